"""What both frameworks' networks share: the neuron's parameters, the synapse layers (built framework-free, so
that the same seed gives both frameworks bit-identical weights), the spikes a network returns and the
:class:`SpikingNetwork` interface. See :mod:`spikemax_bench.models` for the architectures and the neuron."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

__all__ = ["ARCHITECTURES", "FRAMEWORKS", "Architecture", "NeuronParameters", "NetworkSpikes", "SpikingNetwork",
           "build_synapses"]  # fmt: skip

FRAMEWORKS = ("snntorch", "norse")
ARCHITECTURES = ("mlp", "conv")
Architecture = Literal["mlp", "conv"]


@dataclass(frozen=True)
class NeuronParameters:
    """LIF parameters shared by both frameworks; times are in units of the input's time step (dt = 1).

    ``tau_mem = 10`` steps keeps a good part of the evidence of the last ~10 frames; a threshold of 1 with the
    default ``nn.Linear`` initialisation lets a few hidden neurons fire on the first batches, which any
    gradient-based training needs.
    """

    tau_mem: float = 10.0
    threshold: float = 1.0
    surrogate_slope: float = 1.0
    dt: float = 1.0

    @property
    def beta(self) -> float:
        """Membrane decay per step, ``exp(-dt / tau_mem)``."""
        return math.exp(-self.dt / self.tau_mem)


@dataclass
class NetworkSpikes:
    """Spikes of one forward pass, time-first.

    Attributes:
        input: the input frames, ``(T, B, *input_shape)``; event counts act as input spikes.
        layers: spikes of each LIF layer in order, ``(T, B, *layer_shape)``; the last is the output ``(T, B, C)``.
    """

    input: Tensor
    layers: list[Tensor]

    @property
    def output(self) -> Tensor:
        return self.layers[-1]

    @property
    def presynaptic(self) -> list[Tensor]:
        """The layers whose spikes drive synapses (input and hidden layers), in the order of ``fan_out``."""
        return [self.input, *self.layers[:-1]]


def build_synapses(
    architecture: Architecture, input_shape: tuple[int, ...], num_classes: int, hidden_size: int
) -> list[nn.Module]:
    """The synapse layers of ``architecture``, freshly initialised from torch's global RNG.

    Shape: each module maps one step ``(B, *previous_layer_shape)`` to ``(B, *next_layer_shape)``; the first
    takes ``(B, *input_shape)``, the last returns ``(B, num_classes)``.
    """
    if architecture == "mlp":
        return [
            nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), hidden_size)),
            nn.Linear(hidden_size, num_classes),
        ]
    if architecture == "conv":
        if len(input_shape) != 3:
            raise ValueError(
                f"architecture 'conv' needs event frames (channels, height, width), got input_shape {input_shape}; "
                "use architecture 'mlp' for channel data sets"
            )
        channels, height, width = input_shape
        # Two stride-2 convolutions with "same" padding shrink height and width by ceil(/2) each.
        flat_features = 32 * math.ceil(math.ceil(height / 2) / 2) * math.ceil(math.ceil(width / 2) / 2)
        return [
            nn.Conv2d(channels, 16, kernel_size=5, stride=2, padding=2),
            nn.Conv2d(16, 32, kernel_size=3, stride=2, padding=1),
            nn.Sequential(nn.Flatten(), nn.Linear(flat_features, num_classes)),
        ]
    raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")


def _fan_out(synapse: nn.Module, input_shape: tuple[int, ...]) -> Tensor:
    """Outgoing synapses of every input neuron of ``synapse``, ``(*input_shape)``.

    With every weight set to 1 and every bias to 0, ``d sum(output) / d input_j`` counts the outputs that input
    ``j`` reaches: ``out_features`` for a linear layer, and for a convolution the exact count including borders
    and strides.
    """
    probe_parameters = {
        name: torch.ones_like(value) if name.endswith("weight") else torch.zeros_like(value)
        for name, value in synapse.named_parameters()
    }
    probe_input = torch.ones(1, *input_shape, requires_grad=True)
    output = torch.func.functional_call(synapse, probe_parameters, (probe_input,))
    (gradient,) = torch.autograd.grad(output.sum(), probe_input)
    return gradient[0].detach()


class SpikingNetwork(nn.Module):
    """Time loop shared by both frameworks; a subclass supplies the neuron layers.

    Subclasses implement :meth:`reset_state` (forget the membrane potentials of the previous batch) and
    :meth:`step` (one time step: input ``(B, *input_shape)`` -> spikes of every LIF layer).

    Attributes:
        framework: ``"snntorch"`` or ``"norse"``.
        fan_out: per presynaptic layer (input, then hidden layers), the outgoing synapses of each neuron,
            ``(*layer_shape)``; the output layer drives no synapse.
        layer_sizes: neurons per LIF layer, the last being the number of classes.
    """

    framework: str

    def __init__(self, synapses: list[nn.Module], input_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        fan_out: list[Tensor] = []
        layer_shapes: list[tuple[int, ...]] = []
        shape = self.input_shape
        for synapse in synapses:
            fan_out.append(_fan_out(synapse, shape))
            with torch.no_grad():
                shape = tuple(synapse(torch.zeros(1, *shape)).shape[1:])
            layer_shapes.append(shape)
        self.fan_out = fan_out
        self.layer_sizes = [math.prod(layer_shape) for layer_shape in layer_shapes]

    def reset_state(self) -> None:
        raise NotImplementedError

    def step(self, frame: Tensor) -> list[Tensor]:
        raise NotImplementedError

    def forward(self, frames: Tensor) -> NetworkSpikes:
        """Run every time step of ``frames``.

        Shape:
            - frames: ``(T, B, *input_shape)``
            - output: :class:`NetworkSpikes` with ``output`` ``(T, B, C)``
        """
        if tuple(frames.shape[2:]) != self.input_shape:
            raise ValueError(
                f"frames must be [T, B, *{self.input_shape}], got shape {tuple(frames.shape)}"
            )
        self.reset_state()
        per_step = [self.step(frame) for frame in frames]
        layers = [torch.stack(layer_steps) for layer_steps in zip(*per_step, strict=True)]
        return NetworkSpikes(input=frames, layers=layers)
