"""A bench network as a :class:`spikemax_plugins.early_exit.SlotNetwork`, counting the work it executes.

:func:`spikemax_plugins.early_exit.stream` steps a pool of batch rows, each holding one sample at its own step;
:class:`NetworkSlots` gives it the three methods it needs (``step``, ``reset_rows``, ``keep_rows``) over the
neuron state of either framework, and adds up what was really simulated: synaptic operations (presynaptic
spikes times fan-out, as :func:`spikemax_plugins.metrics.synaptic_operations` counts them) and hidden + output
spikes, over every row of every call. Divided by the number of decisions, these are the compute per decision
that the engine executes.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .network import SpikingNetwork


class NetworkSlots:
    """``network`` (reset here) as a slot network.

    With ``count_work``, ``synaptic_operations`` and ``spikes`` (float64 scalars) add up the work of every row of
    every call: what the engine executed (off by default, so that timing measures the network alone).
    """

    def __init__(self, network: SpikingNetwork, *, count_work: bool = False) -> None:
        network.reset_state()
        self.network = network
        self.count_work = count_work
        self.synaptic_operations = torch.zeros((), dtype=torch.float64)
        self.spikes = torch.zeros((), dtype=torch.float64)

    def step(self, frame: Tensor) -> Tensor:
        """One step of the live rows: frames ``(S, *input_shape)`` -> output spikes ``(S, C)``."""
        layers = self.network.step(frame)
        if self.count_work:
            presynaptic = [frame, *layers[:-1]]
            for spikes, fan_out in zip(presynaptic, self.network.fan_out, strict=True):
                operations = (spikes.to(torch.float64) * fan_out.to(spikes.device)).sum()
                self.synaptic_operations = self.synaptic_operations.to(operations.device) + operations
            for layer in layers:
                self.spikes = self.spikes.to(layer.device) + layer.to(torch.float64).sum()
        return layers[-1]

    def reset_rows(self, rows: Tensor) -> None:
        """New samples start in ``rows``: the state a reset network starts from (zero membrane potential here)."""
        if self.network.framework == "snntorch":
            for neuron in self._snntorch_neurons():
                neuron.mem[rows] = 0.0  # snntorch.utils.reset makes zeros
        else:
            for index, (state, cell) in enumerate(zip(self.network._states, self.network.neurons, strict=True)):
                initial = cell.state_fallback(state.v)  # Norse's own initial state (v = v_leak)
                self.network._states[index] = state._replace(v=state.v.index_put((rows,), initial.v.detach()))

    def keep_rows(self, rows: Tensor) -> None:
        """Only ``rows`` stay, in this order."""
        if self.network.framework == "snntorch":
            for neuron in self._snntorch_neurons():
                neuron.mem = neuron.mem[rows]
        else:
            self.network._states = [state._replace(v=state.v[rows]) for state in self.network._states]

    def _snntorch_neurons(self) -> list:
        import snntorch

        return [module for module in self.network.modules() if isinstance(module, snntorch.Leaky)]
