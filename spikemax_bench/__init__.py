"""spikemax-bench, the reproduction application: the SpikeMax paper's comparison in snnTorch and Norse.

:mod:`.cli` (``spikemax-bench``, ``python -m spikemax_bench``) and :mod:`.arguments`; a run (:mod:`.run`) of
cells (:mod:`.cells`, kept in :mod:`.store`) over :mod:`.config`'s grid (:mod:`.sweep`), trained by :mod:`.train`
and measured by :mod:`.evaluate` (:mod:`.measures`); :mod:`.summary`, :mod:`.verdicts` (:mod:`.stats`),
:mod:`.report` and :mod:`.render`; :mod:`.publish` and :mod:`.compare` for the committed results;
:mod:`.provenance`, :mod:`.distributed`; :mod:`.data` and :mod:`.models`. It imports the library
(``spikemax_plugins``) and the adapters; they never import it.
"""
