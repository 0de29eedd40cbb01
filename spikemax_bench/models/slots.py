"""A bench network as a :class:`spikemax_plugins.early_exit.SlotNetwork`.

:func:`spikemax_plugins.early_exit.stream` steps a pool of batch rows, each holding one sample at its own step;
:class:`NetworkSlots` gives it the three methods it needs (``step``, ``reset_rows``, ``keep_rows``) over the
neuron state of either framework (``benchmarks/early_exit_throughput.py`` times it).
"""

from __future__ import annotations

from torch import Tensor

from .network import SpikingNetwork


class NetworkSlots:
    """``network`` (reset here) as a slot network: its step returns the output layer's spikes."""

    def __init__(self, network: SpikingNetwork) -> None:
        network.reset_state()
        self.network = network
        # Found once: walking the modules at every refill costs more than the row update itself.
        self._neurons = self._snntorch_neurons() if network.framework == "snntorch" else []
        self._norse_initial: list[Tensor] | None = None  # each Norse layer's initial v, made at the first reset

    def step(self, frame: Tensor) -> Tensor:
        """One step of the live rows: frames ``(S, *input_shape)`` -> output spikes ``(S, C)``."""
        return self.network.step(frame)[-1]

    def reset_rows(self, rows: Tensor) -> None:
        """New samples start in ``rows``: the state a reset network starts from (zero membrane potential here)."""
        if self.network.framework == "snntorch":
            for neuron in self._neurons:
                neuron.mem.index_fill_(0, rows, 0.0)  # snntorch.utils.reset makes zeros
        else:
            if self._norse_initial is None:  # Norse's own initial state (v = v_leak), the same for every row
                self._norse_initial = [cell.state_fallback(state.v).v.detach()
                                       for state, cell in zip(self.network._states, self.network.neurons, strict=True)]
            for state, initial in zip(self.network._states, self._norse_initial, strict=True):
                # In place: the engine steps under no_grad, and each step makes a new state tensor anyway.
                state.v.index_fill_(0, rows, initial)  # LIFBox's v_leak: a 0-dim tensor

    def keep_rows(self, rows: Tensor) -> None:
        """Only ``rows`` stay, in this order."""
        if self.network.framework == "snntorch":
            for neuron in self._neurons:
                neuron.mem = neuron.mem[rows]
        else:
            self.network._states = [state._replace(v=state.v[rows]) for state in self.network._states]

    def _snntorch_neurons(self) -> list:
        import snntorch

        return [module for module in self.network.modules() if isinstance(module, snntorch.Leaky)]
