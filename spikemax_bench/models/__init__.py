"""The same small spiking networks in snnTorch and Norse, behind one interface for the shared training loop.

Every network is a stack of synapse layers (``nn.Linear`` / ``nn.Conv2d``), each followed by a layer of leaky
integrate-and-fire (LIF) neurons. The synapse layers are built here, once, by framework-free code, so that with
the same seed both frameworks start from bit-identical weights; only the neuron layers come from the host
framework (:mod:`.snntorch_models`, :mod:`.norse_models`). A network maps input frames ``[T, B, *input_shape]``
to :class:`NetworkSpikes` (input, hidden and output spikes, all time-first), and carries the fan-out of every
layer that drives synapses, for :func:`spikemax_plugins.metrics.synaptic_operations`.

Architectures (``hidden_size`` = H, C classes):

* ``"mlp"``: flatten -> Linear(prod(input_shape), H) -> LIF -> Linear(H, C) -> LIF.
* ``"conv"`` (``(2, height, width)`` event frames only): Conv2d(2, 16, 5, stride 2, padding 2) -> LIF ->
  Conv2d(16, 32, 3, stride 2, padding 1) -> LIF -> flatten -> Linear(32 * height/4 * width/4, C) -> LIF.
  Strided convolutions instead of pooling, so no spike is pooled into a non-binary value. On digits-dvs an
  epoch takes about 3.4 s on one CPU thread against 0.8 s for the MLP, and after 2 epochs it is further from
  converged; the 24 trainings of the default run would no longer fit in 10 minutes, so ``"mlp"`` is the
  default and ``"conv"`` an option (``--architecture conv``).

The neuron, identical in both frameworks as far as the hosts allow (see :class:`NeuronParameters`):
``v[t] = beta * (1 - z[t-1]) * v[t-1] + I[t]``, ``z[t] = H(v[t] - threshold)`` (reset to zero after a spike,
no synaptic current), with ``beta = exp(-dt / tau_mem)`` and the SuperSpike / fast-sigmoid surrogate
``dz/dv = 1 / (slope * |v - threshold| + 1)^2``.

Differences between the two frameworks that remain (both measured nowhere else, so stated here):

* snnTorch's ``Leaky`` is ``v = beta * v + I``; Norse's ``LIFBoxCell`` (its LIF without the synaptic current
  that ``LIFCell`` has) is the Euler step ``v = v + dt * tau_mem_inv * (I' - v)``. We set
  ``tau_mem_inv = (1 - beta) / dt`` and feed Norse ``I' = I / (1 - beta)``, which makes the two forward
  passes the same function of the weights; they differ only in float rounding.
* snnTorch detaches its reset signal (no gradient through the reset); Norse's ``reset_value``
  ``v = (1 - z) * v`` lets the surrogate gradient flow through ``z`` into the reset.
* Norse 1.1.0's SuperSpike backward ignores ``alpha`` (its gradient is ``1 / (|x| + 1)^2``), so the
  surrogate slope is 1 in both frameworks: snnTorch gets ``fast_sigmoid(slope=1)``, Norse ``alpha=1``.
* snnTorch keeps the membrane potential inside its ``Leaky`` modules (``init_hidden=True``, cleared by
  ``snntorch.utils.reset``); Norse passes a state object per layer, which the Norse network threads itself.
"""

from __future__ import annotations

import torch

from .network import (
    ARCHITECTURES,
    FRAMEWORKS,
    Architecture,
    NetworkSpikes,
    NeuronParameters,
    SpikingNetwork,
    build_synapses,
)

__all__ = [
    "ARCHITECTURES",
    "FRAMEWORKS",
    "NeuronParameters",
    "NetworkSpikes",
    "SpikingNetwork",
    "build_network",
    "build_synapses",
]

def build_network(
    framework: str,
    *,
    architecture: Architecture,
    input_shape: tuple[int, ...],
    num_classes: int,
    hidden_size: int = 128,
    neuron: NeuronParameters | None = None,
    seed: int = 0,
) -> SpikingNetwork:
    """A network of ``framework`` whose initial weights depend on ``seed`` only (not on the framework)."""
    neuron = neuron or NeuronParameters()
    torch.manual_seed(seed)
    synapses = build_synapses(architecture, tuple(input_shape), num_classes, hidden_size)
    if framework == "snntorch":
        from .snntorch_models import SnnTorchNetwork

        return SnnTorchNetwork(synapses, tuple(input_shape), neuron)
    if framework == "norse":
        from .norse_models import NorseNetwork

        return NorseNetwork(synapses, tuple(input_shape), neuron)
    raise ValueError(f"framework must be one of {FRAMEWORKS}, got {framework!r}")
