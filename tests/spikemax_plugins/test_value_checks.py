"""The value-check switch (issue 12): no host synchronisation with checks off, shape checks kept, full-graph
compilation of every loss and metric."""

import math

import pytest
import torch
from torch.overrides import TorchFunctionMode

import spikemax_plugins as smx
from spikemax_plugins import early_exit, metrics

# Tensor methods that read device memory back to the host (each one a synchronisation on a GPU).
HOST_READS = {"item", "tolist", "__bool__", "__float__", "__int__", "__index__", "nonzero", "cpu", "numpy", "equal"}


class HostReadSpy(TorchFunctionMode):
    """Records every torch function called inside the block whose name is in :data:`HOST_READS`."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in HOST_READS:
            self.reads.append(name)
        return func(*args, **(kwargs or {}))


def _problem():
    generator = torch.Generator().manual_seed(0)
    spikes = (torch.rand(12, 4, 6, generator=generator) < 0.3).float().requires_grad_()
    target = torch.tensor([0, 5, 2, 1])
    weight = torch.rand(6, generator=generator) + 0.5
    return spikes, target, weight


RULE = early_exit.ExitRule(
    checkpoints=[3, 7, 11], thresholds=torch.tensor([0.5, 0.4, 0.3]), max_set_size=1, score="probability",
    smoothing=1.0, num_classes=6, num_steps=12,
)

CALLS = {
    "spikemax_g": lambda s, y, w: smx.spikemax_g(s, y, weight=w).backward(),
    "spikemax_g smoothing 0": lambda s, y, w: smx.spikemax_g(s, y, smoothing=0.0, weight=w).backward(),
    "spikemax_g soft": lambda s, y, w: smx.spikemax_g(s, torch.full((4, 6), 1 / 6), weight=w).backward(),
    "spikemax_s": lambda s, y, w: smx.spikemax_s(s, y, window=4, weight=w).backward(),
    "spikemax_s smoothing 0": lambda s, y, w: smx.spikemax_s(s, y, window=4, smoothing=0.0).backward(),
    "mse_count": lambda s, y, w: smx.mse_count(s, y, true_rate=0.5, false_rate=0.1, weight=w).backward(),
    "module": lambda s, y, w: smx.SpikeMaxSLoss(window=3, weight=w)(s, y).backward(),
    "spike_counts": lambda s, y, w: smx.spike_counts(s),
    "predict": lambda s, y, w: smx.predict(s),
    "accuracy": lambda s, y, w: smx.accuracy(s, y),
    "accuracy_over_time": lambda s, y, w: smx.accuracy_over_time(s, y),
    "time_to_decision": lambda s, y, w: smx.time_to_decision(s),
    "synaptic_operations": lambda s, y, w: smx.synaptic_operations([s, s], [3, w], until=y),
    "confidence": lambda s, y, w: early_exit.confidence(s, score="margin"),
    "exit state update": lambda s, y, w: [RULE.start(4).update(step) for step in s.detach()],
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_no_host_read_with_value_checks_off(name):
    spikes, target, weight = _problem()
    with smx.value_checks(False), HostReadSpy() as spy:
        CALLS[name](spikes, target, weight)
    assert spy.reads == []


@pytest.mark.parametrize("name", ["spikemax_g", "spikemax_s", "mse_count", "accuracy", "synaptic_operations"])
def test_the_spy_sees_the_checks_when_they_are_on(name):
    spikes, target, weight = _problem()
    with HostReadSpy() as spy:
        CALLS[name](spikes, target, weight)
    assert "item" in spy.reads  # on the CPU the extremes are read with item(): the spy would catch any read


def test_checks_off_skip_values_but_keep_shapes_dtypes_and_options():
    spikes, target, _ = _problem()
    with smx.value_checks(False):
        assert math.isnan(smx.spikemax_g(spikes.detach() * math.nan, target).item())  # undefined, not refused
        with pytest.raises(ValueError, match=r"an integer target holds class indices and must be \[B\] = \[4\]"):
            smx.spikemax_g(spikes, target[:3])
        with pytest.raises(TypeError, match=r"spikes must be a floating-point tensor"):
            smx.predict(spikes.long())
        with pytest.raises(ValueError, match=r"temperature must be finite and >= 0.0001"):
            smx.spikemax_g(spikes, target, temperature=0.0)
    with pytest.raises(ValueError, match=r"spikes must be finite"):
        smx.spikemax_g(spikes.detach() * math.nan, target)


def test_switch_and_context_manager_restore_the_previous_setting():
    assert smx.value_checks_enabled()
    with smx.value_checks(False):
        assert not smx.value_checks_enabled()
        with smx.value_checks(True):
            assert smx.value_checks_enabled()
        assert not smx.value_checks_enabled()
    assert smx.value_checks_enabled()
    smx.set_value_checks(False)
    try:
        assert not smx.value_checks_enabled()
    finally:
        smx.set_value_checks(True)

    @smx.value_checks(False)
    def unchecked_prediction(spikes):
        return smx.predict(spikes)

    assert unchecked_prediction(-torch.ones(3, 2, 4)).tolist() == [-1, -1]
    assert smx.value_checks_enabled()
    with pytest.raises(TypeError, match=r"enabled must be a bool, got int"):
        smx.set_value_checks(0)


@pytest.mark.cuda
@pytest.mark.parametrize("name", sorted(CALLS))
def test_no_synchronisation_on_cuda_with_value_checks_off(name):
    spikes, target, weight = _problem()
    spikes = spikes.detach().cuda().requires_grad_()
    target, weight = target.cuda(), weight.cuda()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        with smx.value_checks(False):
            if name == "exit state update":
                state = RULE.start(4, device="cuda")
                for step in spikes.detach():
                    state.update(step)
            else:
                CALLS[name](spikes, target, weight)
    finally:
        torch.cuda.set_sync_debug_mode("default")


COMPILED = {
    "spikemax_g": lambda s, y: smx.spikemax_g(s, y),
    "spikemax_g softmax": lambda s, y: smx.spikemax_g(s, y, mode="softmax", temperature=2.0),
    "spikemax_g smoothing 0": lambda s, y: smx.spikemax_g(s, y, smoothing=0.0, temperature=0.5),
    "spikemax_s": lambda s, y: smx.spikemax_s(s, y, window=5, stride=2),
    "spikemax_s lava layout": lambda s, y: smx.spikemax_s(s.permute(1, 2, 0), y, window=5, time_dim=-1),
    "mse_count": lambda s, y: smx.mse_count(s, y, true_rate=0.4, false_rate=0.1),
    "predict": lambda s, y: metrics.predict(s),
    "accuracy": lambda s, y: metrics.accuracy(s, y),
    "accuracy_over_time": lambda s, y: metrics.accuracy_over_time(s, y),
    "time_to_decision": lambda s, y: metrics.time_to_decision(s),
    "synaptic_operations": lambda s, y: metrics.synaptic_operations([s], [4.0]),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(COMPILED))
def test_full_graph_compilation_equals_eager(name):
    torch._dynamo.reset()
    spikes, target, _ = _problem()
    function = COMPILED[name]
    compiled = torch.compile(function, fullgraph=True)
    eager_spikes, compiled_spikes = spikes.detach().clone(), spikes.detach().clone()
    differentiable = name.startswith(("spikemax", "mse"))
    if differentiable:
        eager_spikes.requires_grad_()
        compiled_spikes.requires_grad_()
    expected, actual = function(eager_spikes, target), compiled(compiled_spikes, target)
    torch.testing.assert_close(actual, expected)
    if differentiable:
        expected.backward()
        actual.backward()
        torch.testing.assert_close(compiled_spikes.grad, eager_spikes.grad)
