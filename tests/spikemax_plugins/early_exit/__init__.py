"""Early exit (spikemax_plugins.early_exit) against its NumPy twins in spikemax_plugins.reference, and its promises.

The twins are written from the semantics in the module docstring. Decisions compare scores with thresholds by
``>=``, so the exact-agreement properties draw spikes and smoothings whose scores are exact in float64 in any
summation order (``strategies.EXACT_SMOOTHINGS``); the confidence itself is also checked on arbitrary graded
spikes with a tolerance.
"""
