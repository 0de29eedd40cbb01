"""spikemax_snntorch.stream_early_exit: continuous batching over snnTorch networks decides exactly as the full
recording does (``early_exit.evaluate``), for every neuron kind whose state snnTorch keeps in buffers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spikemax_plugins import early_exit

from .. import stream_support as harness
from ..stream_support import NUM_CLASSES, NUM_FEATURES, NUM_SAMPLES, NUM_STEPS

snn = pytest.importorskip("snntorch", reason="the snnTorch adapter tests need snnTorch")
import snntorch.utils  # noqa: E402
import spikemax_snntorch  # noqa: E402

HIDDEN = 8


def _neuron(kind: str, size: int, *, output: bool = False) -> nn.Module:
    if kind == "Leaky":
        return snn.Leaky(beta=0.8, init_hidden=True, output=output)
    if kind == "Synaptic":
        return snn.Synaptic(alpha=0.7, beta=0.8, init_hidden=True, output=output)
    if kind == "Alpha":
        return snn.Alpha(alpha=0.8, beta=0.7, threshold=0.5, init_hidden=True, output=output)
    if kind == "RLeaky":
        return snn.RLeaky(beta=0.8, linear_features=size, init_hidden=True, output=output)
    raise AssertionError(kind)


class ToDtype(nn.Module):
    """snnTorch's spike functions return float32 spikes whatever the membrane's dtype: feed the next layer's."""

    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        self.dtype = dtype

    def forward(self, x):
        return x.to(self.dtype)


def make_net(kind: str, seed: int = 0) -> nn.Module:
    """A network of 6 -> 8 -> 3 neurons of one kind, in float64 (no rounding doubt between batch sizes), except
    RLeaky, whose recurrent layer takes its own float32 spikes."""
    dtype = torch.float32 if kind == "RLeaky" else torch.float64
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Linear(NUM_FEATURES, HIDDEN), _neuron(kind, HIDDEN), ToDtype(dtype),
        nn.Linear(HIDDEN, NUM_CLASSES), _neuron(kind, NUM_CLASSES, output=True),
    )
    with torch.no_grad():  # inputs of class c drive output neuron c
        net[0].weight.add_((torch.arange(HIDDEN)[:, None] % NUM_CLASSES == torch.arange(NUM_FEATURES) % NUM_CLASSES)
                           * 0.8)
        net[3].weight.add_((torch.arange(NUM_CLASSES)[:, None] == torch.arange(HIDDEN) % NUM_CLASSES) * 0.8)
    return net.to(dtype)


class Wrapper(nn.Module):
    """A network nested one level down: snntorch.utils.reset(wrapper) alone would not reach its neurons."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.body = net

    def forward(self, x):
        return self.body(x)


def _dtype(net: nn.Module) -> torch.dtype:
    return next(net.parameters()).dtype


def recording(net: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """The full recording ``[T, B, N]``: reset, then ``net(inputs[t])`` for every step."""
    for module in net.modules():
        snntorch.utils.reset(module)
    with torch.no_grad():
        return torch.stack([spikemax_snntorch._output_spikes(net(step)) for step in inputs])


def streamer(net: nn.Module):
    return lambda inputs, rule, **options: spikemax_snntorch.stream_early_exit(net, inputs, rule, **options)


@pytest.mark.parametrize("nested", [False, True], ids=["plain", "nested"])
@pytest.mark.parametrize("kind", ["Leaky", "Synaptic", "Alpha", "RLeaky"])
def test_stream_equals_the_full_recording(kind, nested):
    net = make_net(kind)
    if nested:
        net = Wrapper(net)
    inputs, target = harness.make_data(dtype=_dtype(net))
    harness.assert_stream_equals_recording(streamer(net), recording(net, inputs), inputs, target)


@pytest.mark.parametrize("kind", ["Leaky", "RLeaky"])
def test_a_reused_row_starts_from_rest(kind):
    net = make_net(kind)
    inputs, target = harness.make_data(seed=1, dtype=_dtype(net))
    harness.assert_order_does_not_matter(streamer(net), inputs, target)


def test_reset_rows_zeroes_only_those_rows_of_every_state_buffer():
    net = make_net("Synaptic")
    slots = spikemax_snntorch._SnnTorchSlots(net)
    inputs, _ = harness.make_data(dtype=_dtype(net))
    spikemax_snntorch._reset_every_neuron(net)
    for step in inputs[:4]:
        slots.step(step)
    before = {name: buffer.clone() for name, buffer in net.named_buffers() if buffer.dim() and buffer.shape[0] > 1}
    assert {name.rpartition(".")[2] for name in before} == {"syn", "mem"}  # beta, alpha, threshold: not state
    slots.reset_rows(torch.tensor([1, 3]))
    after = dict(net.named_buffers())
    for name, value in before.items():
        assert torch.equal(after[name][[1, 3]], torch.zeros_like(value[[1, 3]]))
        assert torch.equal(after[name][[0, 2, 4]], value[[0, 2, 4]])
    slots.keep_rows(torch.tensor([0, 3]))
    for name, value in before.items():
        assert after[name].shape[0] == NUM_SAMPLES  # the old tensors are untouched: updates are out of place
        assert torch.equal(dict(net.named_buffers())[name], torch.stack([value[0], torch.zeros_like(value[3])]))
    assert not torch.equal(net[1].beta, torch.zeros_like(net[1].beta))


def test_core_argument_errors_reach_the_user_unchanged():
    inputs, target = harness.make_data()
    harness.assert_core_errors_surface(streamer(make_net("Leaky")), inputs, target)


def test_stream_refuses_what_it_cannot_step():
    inputs, _ = harness.make_data()
    rule = harness.hand_rule()
    with pytest.raises(TypeError, match="net must be a torch.nn.Module"):
        spikemax_snntorch.stream_early_exit(lambda x: x, inputs, rule, slots=2)
    plain = nn.Sequential(nn.Linear(NUM_FEATURES, NUM_CLASSES), snn.Leaky(beta=0.8))
    with pytest.raises(ValueError, match="net must contain snnTorch neurons built with init_hidden=True"):
        spikemax_snntorch.stream_early_exit(plain, inputs, rule, slots=2)
    with pytest.raises(ValueError, match="init_hidden=True"):
        spikemax_snntorch.stream_early_exit(nn.Linear(NUM_FEATURES, NUM_CLASSES), inputs, rule, slots=2)


def test_stream_takes_batch_first_inputs_with_time_dim():
    net = make_net("Leaky")
    inputs, target = harness.make_data(dtype=_dtype(net))
    rule = harness.hand_rule()
    expected = early_exit.evaluate(rule, recording(net, inputs), target)
    report = spikemax_snntorch.stream_early_exit(net, inputs.movedim(0, 1), rule, slots=3, target=target, time_dim=1)
    harness.assert_same_decisions(report, expected)
    assert report.sample_steps_simulated < NUM_SAMPLES * NUM_STEPS


@pytest.mark.cuda
def test_stream_on_cuda_equals_the_full_recording():
    net = make_net("RLeaky").cuda()
    inputs, target = harness.make_data(dtype=_dtype(net))
    inputs, target = inputs.cuda(), target.cuda()
    rule = harness.hand_rule()
    expected = early_exit.evaluate(rule, recording(net, inputs), target)
    for slots in (3, NUM_SAMPLES + 5):
        report = spikemax_snntorch.stream_early_exit(net, inputs, rule, slots=slots, target=target)
        harness.assert_same_decisions(report, expected)
        assert report.exit_step.device.type == "cuda"
    # inputs on the CPU, moved row by row with device=
    report = spikemax_snntorch.stream_early_exit(net, inputs.cpu(), rule, slots=4, target=target, device="cuda")
    harness.assert_same_decisions(report, expected)
