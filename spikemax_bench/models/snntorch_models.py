"""The bench networks with snnTorch neurons: ``snntorch.Leaky`` layers in an ``nn.Sequential``, as in its tutorials.

See :mod:`spikemax_bench.models` for the architectures and how this neuron matches Norse's.
"""

from __future__ import annotations

import snntorch
import snntorch.utils
from snntorch import surrogate
from torch import Tensor, nn

from .network import NeuronParameters, SpikingNetwork


class SnnTorchNetwork(SpikingNetwork):
    """``nn.Sequential(synapse, Leaky, synapse, Leaky, ...)`` with ``init_hidden=True``, stepped through time.

    Reset to zero after a spike (``reset_mechanism="zero"``, snnTorch's default one-step reset delay) and the
    fast-sigmoid surrogate, the same neuron as :class:`~spikemax_bench.models.norse_models.NorseNetwork`.
    """

    framework = "snntorch"

    def __init__(self, synapses: list[nn.Module], input_shape: tuple[int, ...], neuron: NeuronParameters) -> None:
        super().__init__(synapses, input_shape)
        modules: list[nn.Module] = []
        for synapse in synapses:
            modules += [
                synapse,
                snntorch.Leaky(
                    beta=neuron.beta,
                    threshold=neuron.threshold,
                    spike_grad=surrogate.fast_sigmoid(slope=neuron.surrogate_slope),
                    init_hidden=True,
                    reset_mechanism="zero",
                ),
            ]
        self.net = nn.Sequential(*modules)

    def reset_state(self) -> None:
        snntorch.utils.reset(self.net)

    def step(self, frame: Tensor) -> list[Tensor]:
        layer_spikes = []
        activity = frame
        for module in self.net:
            activity = module(activity)
            if isinstance(module, snntorch.Leaky):
                layer_spikes.append(activity)
        return layer_spikes
