"""The bench networks with Norse neurons: ``norse.torch.LIFBoxCell`` layers (LIF without synaptic current).

Norse has no time-looping module for the box LIF, so :meth:`NorseNetwork.step` threads one
``LIFBoxFeedForwardState`` per layer itself. See :mod:`spikemax_bench.models` for how this neuron
matches snnTorch's ``Leaky``.
"""

from __future__ import annotations

import norse.torch
import torch
from norse.torch.functional.reset import reset_value
from torch import Tensor, nn

from .network import NeuronParameters, SpikingNetwork


class NorseNetwork(SpikingNetwork):
    """Synapse layers each followed by a ``LIFBoxCell`` (reset to 0, SuperSpike surrogate), stepped through time."""

    framework = "norse"

    def __init__(self, synapses: list[nn.Module], input_shape: tuple[int, ...], neuron: NeuronParameters) -> None:
        super().__init__(synapses, input_shape)
        decay_per_step = 1.0 - neuron.beta
        parameters = norse.torch.LIFBoxParameters(
            # One Euler step then decays v by exactly beta, as snnTorch's Leaky does.
            tau_mem_inv=torch.as_tensor(decay_per_step / neuron.dt),
            v_leak=torch.as_tensor(0.0),
            v_th=torch.as_tensor(neuron.threshold),
            v_reset=torch.as_tensor(0.0),
            method="super",
            alpha=torch.as_tensor(neuron.surrogate_slope),
            reset_method=reset_value,
        )
        self.synapses = nn.ModuleList(synapses)
        self.neurons = nn.ModuleList(norse.torch.LIFBoxCell(parameters, dt=neuron.dt) for _ in synapses)
        # The Euler step adds dt * tau_mem_inv * I; this gain turns that into + I, like snnTorch's Leaky.
        self.input_gain = 1.0 / decay_per_step
        self._states: list[object | None] = []

    def reset_state(self) -> None:
        self._states = [None] * len(self.neurons)

    def step(self, frame: Tensor) -> list[Tensor]:
        layer_spikes = []
        activity = frame
        for index, (synapse, neuron) in enumerate(zip(self.synapses, self.neurons, strict=True)):
            activity, self._states[index] = neuron(synapse(activity) * self.input_gain, self._states[index])
            layer_spikes.append(activity)
        return layer_spikes
