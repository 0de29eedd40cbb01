"""The SpikingJelly adapter: registration into functional, the core's numbers, a network that learns, early exit."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from spikemax_plugins import early_exit, functional, metrics

from .. import adapter_support as helpers
from ..adapter_support import NUM_CLASSES, NUM_INPUTS, assert_same, loss_cases
from ..spikemax_plugins.early_exit.support import run_steps_simulated

# The tox core env runs tests/spikemax_plugins only; a run without SpikingJelly skips this file.
sj_functional = pytest.importorskip("spikingjelly.activation_based.functional", reason="needs SpikingJelly")
import spikemax_spikingjelly  # noqa: E402
from spikingjelly.activation_based import base, layer, neuron  # noqa: E402

NAMES = ("spikemax_g", "spikemax_s", "accuracy_over_time", "time_to_decision")
REGISTERED = {sj_functional: NAMES}
needs_stream = pytest.mark.skipif(not hasattr(early_exit, "stream"), reason="engine not merged yet")


@pytest.fixture
def restore_registration():
    yield
    spikemax_spikingjelly.unregister()
    spikemax_spikingjelly.register()


# --- registration ----------------------------------------------------------------------------------------------


def test_import_registers_exactly_the_four_names():
    helpers.assert_import_registered(spikemax_spikingjelly, REGISTERED)
    ours = {name for name in dir(sj_functional) if getattr(getattr(sj_functional, name), "__module__", "") ==
            "spikemax_spikingjelly"}
    assert ours == set(NAMES)


def test_register_is_idempotent_and_unregister_removes_only_ours(restore_registration):
    helpers.assert_register_is_idempotent(spikemax_spikingjelly, REGISTERED)
    helpers.assert_unregister_removes_only_ours(
        spikemax_spikingjelly, REGISTERED, {sj_functional: "temporal_efficient_training_cross_entropy"}
    )


def test_register_never_overwrites_a_spikingjelly_name(restore_registration):
    helpers.assert_never_overwrites(spikemax_spikingjelly, REGISTERED, sj_functional, "spikemax_g")
    helpers.assert_never_overwrites(spikemax_spikingjelly, REGISTERED, sj_functional, "time_to_decision")


def test_register_leaves_a_monkeypatched_host_name(restore_registration, monkeypatch):
    spikemax_spikingjelly.unregister()
    host_own = object()
    monkeypatch.setattr(sj_functional, "accuracy_over_time", host_own, raising=False)
    with pytest.warns(UserWarning, match="already defines accuracy_over_time"):
        added = spikemax_spikingjelly.register()
    assert sj_functional.accuracy_over_time is host_own
    assert sorted(added) == sorted(f"{sj_functional.__name__}.{name}" for name in NAMES if name != "accuracy_over_time")


def test_reload_replaces_stale_names(restore_registration):
    helpers.assert_reload_replaces_stale_names(spikemax_spikingjelly, REGISTERED)


def test_missing_host_raises_import_error_naming_the_extra():
    helpers.assert_missing_host_names_the_extra(
        "spikemax_spikingjelly", "spikingjelly", "spikingjelly", "spikemax_spikingjelly needs SpikingJelly"
    )


def test_adapter_imports_no_other_host():
    for other in ("snntorch", "norse", "sinabs"):
        helpers.assert_never_imports("spikemax_spikingjelly", other)


def test_functions_have_explicit_signatures():
    import inspect

    for name in NAMES:
        kinds = {parameter.kind for parameter in inspect.signature(getattr(sj_functional, name)).parameters.values()}
        assert inspect.Parameter.VAR_KEYWORD not in kinds, name
    assert "window" in inspect.signature(sj_functional.spikemax_s).parameters


# --- the core's numbers --------------------------------------------------------------------------------------


@pytest.mark.parametrize("sliding", [False, True], ids=["spikemax_g", "spikemax_s"])
@given(data=st.data())
def test_losses_equal_the_core(sliding, data):
    spikes, target, options = data.draw(loss_cases(sliding=sliding))
    core, ours = (functional.spikemax_s, sj_functional.spikemax_s) if sliding else (
        functional.spikemax_g, sj_functional.spikemax_g)
    assert_same(ours(spikes, target, **options), core(spikes, target, **options))
    batch_first = spikes.transpose(0, 1)
    assert_same(ours(batch_first, target, **options, time_dim=1), core(spikes, target, **options))


def test_loss_gradient_equals_the_core():
    target = torch.tensor([0, 3, 1])
    helpers.assert_same_loss_and_gradient(
        lambda spikes: sj_functional.spikemax_g(spikes, target, temperature=0.5),
        lambda spikes: functional.spikemax_g(spikes, target, temperature=0.5),
        torch.rand(6, 3, 4, dtype=torch.float64),
    )


@given(loss_cases(sliding=False))
def test_metrics_equal_the_core(case):
    spikes, target, options = case
    num_classes = options["num_classes"]
    assert_same(sj_functional.accuracy_over_time(spikes, target, num_classes),
                metrics.accuracy_over_time(spikes, target, num_classes))
    assert_same(sj_functional.time_to_decision(spikes, num_classes), metrics.time_to_decision(spikes, num_classes))
    assert_same(sj_functional.time_to_decision(spikes.transpose(0, 1), num_classes, time_dim=1),
                metrics.time_to_decision(spikes, num_classes))


def test_core_validation_reaches_the_user():
    with pytest.raises(ValueError, match="window must be >= 1 and <= 3"):
        sj_functional.spikemax_s(torch.rand(3, 2, 4), torch.tensor([0, 1]), window=4)
    with pytest.raises(ValueError, match="mode"):
        sj_functional.spikemax_g(torch.rand(3, 2, 4), torch.tensor([0, 1]), mode="bad")


# --- a multi-step classifier learns --------------------------------------------------------------------------


def lif_classifier() -> nn.Module:
    # A threshold of 0.5 (default 1.0) makes the untrained network fire from the first batch on this task.
    net = nn.Sequential(
        layer.Linear(NUM_INPUTS, 32), neuron.LIFNode(tau=2.0, v_threshold=0.5),
        layer.Linear(32, NUM_CLASSES), neuron.LIFNode(tau=2.0, v_threshold=0.5),
    )
    sj_functional.set_step_mode(net, "m")
    return net


def multi_step_output(net: nn.Module, x_seq: torch.Tensor) -> torch.Tensor:
    sj_functional.reset_net(net)
    return net(x_seq)


@pytest.mark.slow
def test_multi_step_classifier_learns_with_functional_spikemax_g():
    result = helpers.train_and_evaluate(
        lif_classifier, multi_step_output, sj_functional.spikemax_g, helpers.separable_spikes(), "cpu"
    )
    print(f"final loss {result.losses[-1]:.3f}, test accuracy {result.test_accuracy:.3f}")
    helpers.assert_learned(result)
    assert result.test_accuracy >= 0.9


# --- early exit ------------------------------------------------------------------------------------------------


def wired_network(step_mode: str = "m") -> nn.Module:
    net = nn.Sequential(helpers.wire_classes(layer.Linear(NUM_INPUTS, NUM_CLASSES), gain=2.0),
                        neuron.LIFNode(tau=2.0, v_threshold=0.5))
    sj_functional.set_step_mode(net, step_mode)
    return net


def recording(net: nn.Module, x_seq: torch.Tensor) -> torch.Tensor:
    """The full multi-step recording [T, N, C] (the network's step modes as they were, afterwards)."""
    modes = [(module, module.step_mode) for module in net.modules() if hasattr(module, "step_mode")]
    sj_functional.set_step_mode(net, "m")
    sj_functional.reset_net(net)
    with torch.no_grad():
        output = net(x_seq)
    for module, mode in modes:
        module.step_mode = mode
    return output


def step_modes(net: nn.Module) -> list[str]:
    return [module.step_mode for module in net.modules() if hasattr(module, "step_mode")]


def accuracy_rule(net: nn.Module, seed: int = 3) -> tuple[early_exit.ExitRule, helpers.SpikeTask]:
    task = helpers.separable_spikes(seed=seed)
    rule = early_exit.calibrate(recording(net, task.train_inputs), task.train_targets, method="accuracy", alpha=0.02)
    return rule, task


def assert_report_equals(report: early_exit.ExitReport, offline: early_exit.ExitReport) -> None:
    assert torch.equal(report.prediction, offline.prediction)
    assert torch.equal(report.exit_step, offline.exit_step)
    assert torch.equal(report.prediction_set, offline.prediction_set)
    assert report.accuracy == offline.accuracy
    assert report.coverage == offline.coverage


@pytest.mark.parametrize("step_mode", ["m", "s"])
def test_run_early_exit_equals_evaluate_and_restores_step_modes(step_mode):
    net = wired_network(step_mode)
    rule, task = accuracy_rule(net)
    before = step_modes(net)
    report = spikemax_spikingjelly.run_early_exit(net, task.test_inputs, rule, target=task.test_targets)
    assert step_modes(net) == before == [step_mode, step_mode]
    offline = early_exit.evaluate(rule, recording(net, task.test_inputs), task.test_targets)
    assert_report_equals(report, offline)
    assert report.steps_simulated == run_steps_simulated(
        rule.checkpoints, rule.num_steps, offline.exit_step.tolist(), None
    )
    assert report.accuracy > 0.9 and report.exit_fraction < 0.6
    exact = spikemax_spikingjelly.run_early_exit(net, task.test_inputs, rule, target=task.test_targets,
                                                 decide_every=1)
    assert_report_equals(exact, offline)
    assert exact.steps_simulated == int(offline.exit_step.max()) + 1


def test_early_exit_without_training_stops_early():
    helpers.assert_early_exit_runs_without_training(
        spikemax_spikingjelly.run_early_exit, helpers.CountingNetwork(wired_network("s")), recording, seed=5
    )


def test_mixed_step_modes_come_back_also_after_an_error():
    net = wired_network("m")
    net[0].step_mode = "s"  # one module in each mode
    rule, task = accuracy_rule(net)
    with pytest.raises(ValueError, match="inputs must have the rule's T"):
        spikemax_spikingjelly.run_early_exit(net, task.test_inputs[:5], rule)
    assert step_modes(net) == ["s", "m"]
    spikemax_spikingjelly.run_early_exit(net, task.test_inputs, rule)
    assert step_modes(net) == ["s", "m"]


def test_the_network_is_reset_first():
    net = wired_network("m")
    rule, task = accuracy_rule(net)
    expected = spikemax_spikingjelly.run_early_exit(net, task.test_inputs, rule, target=task.test_targets)
    net(task.test_inputs * 5)  # leaves a charged membrane behind
    again = spikemax_spikingjelly.run_early_exit(net, task.test_inputs, rule, target=task.test_targets)
    assert_report_equals(again, expected)


def conv_network() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(
        layer.Conv2d(1, 4, 3, padding=1), neuron.LIFNode(tau=2.0, v_threshold=0.3), layer.MaxPool2d(2),
        layer.Flatten(), layer.Linear(4 * 4 * 4, NUM_CLASSES), neuron.IFNode(v_threshold=0.3),
    )
    sj_functional.set_step_mode(net, "m")
    return net


def conv_inputs(num_samples: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(12, num_samples, 1, 8, 8, generator=generator) < 0.4).float(), torch.randint(
        0, NUM_CLASSES, (num_samples,), generator=generator)


def test_conv_network_early_exit_equals_evaluate():
    net = conv_network()
    calibration, calibration_labels = conv_inputs(64, seed=1)
    test, labels = conv_inputs(48, seed=2)
    recorded = recording(net, test)
    assert recorded.sum() > 0
    rule = early_exit.calibrate(recording(net, calibration), calibration_labels, method="accuracy", alpha=0.05)
    report = spikemax_spikingjelly.run_early_exit(net, test, rule, target=labels)
    assert_report_equals(report, early_exit.evaluate(rule, recorded, labels))
    assert step_modes(net) == ["m"] * 6


def test_multi_step_only_modules_are_refused_by_name():
    rule = early_exit.ExitRule(checkpoints=[4], thresholds=torch.tensor([0.5]), max_set_size=1,
                               score="probability", smoothing=1.0, num_classes=4, num_steps=5)
    net = nn.Sequential(layer.SeqToANNContainer(nn.Linear(NUM_INPUTS, 4)), neuron.LIFNode(step_mode="m"))
    with pytest.raises(TypeError, match=r"multi-step-only SpikingJelly modules \(0: SeqToANNContainer\)"):
        spikemax_spikingjelly.run_early_exit(net, torch.rand(5, 2, NUM_INPUTS), rule)
    assert net[1].step_mode == "m"
    with pytest.raises(TypeError, match="multi-step-only"):
        spikemax_spikingjelly.SpikingJellySlots(net)


def test_bad_arguments_are_named():
    rule, task = accuracy_rule(wired_network())
    with pytest.raises(TypeError, match="net must be a torch.nn.Module"):
        spikemax_spikingjelly.run_early_exit(lambda x: x, task.test_inputs, rule)
    with pytest.raises(TypeError, match="rule must be an ExitRule"):
        spikemax_spikingjelly.run_early_exit(wired_network(), task.test_inputs, "rule")
    with pytest.raises(ValueError, match="inputs must have the rule's T = 20 steps, got 7"):
        spikemax_spikingjelly.run_early_exit(wired_network(), task.test_inputs[:7], rule)
    with pytest.raises(TypeError, match="net must be a torch.nn.Module"):
        spikemax_spikingjelly.SpikingJellySlots("net")


# --- continuous batching: SpikingJellySlots ----------------------------------------------------------------------


def single_step_slots(net: nn.Module) -> spikemax_spikingjelly.SpikingJellySlots:
    sj_functional.set_step_mode(net, "s")
    sj_functional.reset_net(net)
    return spikemax_spikingjelly.SpikingJellySlots(net)


@pytest.mark.parametrize("build", [lambda: wired_network(), conv_network], ids=["linear", "conv"])
def test_slots_reset_and_keep_rows_exactly(build):
    net = build()
    if isinstance(net[0], layer.Conv2d):
        inputs = conv_inputs(5)[0]
    else:
        inputs = helpers.separable_spikes(seed=1, num_test=5).test_inputs
    helpers.assert_slot_rows_follow_fresh_runs(lambda: single_step_slots(net), lambda x: recording(net, x), inputs)


def test_slots_reset_rows_restores_the_reset_value_of_every_memory():
    net = nn.Sequential(layer.Linear(3, 2), neuron.LIFNode(v_reset=None, v_threshold=0.5))
    slots = single_step_slots(net)
    slots.step(torch.rand(4, 3) + 1)
    v_before = net[1].v.clone()
    slots.reset_rows(torch.tensor([0, 2]))
    assert torch.equal(net[1].v[[0, 2]], torch.zeros(2, 2))
    assert torch.equal(net[1].v[[1, 3]], v_before[[1, 3]])
    slots.keep_rows(torch.tensor([3]))
    assert torch.equal(net[1].v, v_before[[3]])


def test_slots_refuse_memories_that_are_not_per_row():
    class Counter(base.MemoryModule):
        def __init__(self):
            super().__init__()
            self.register_memory("steps", 0)

        def single_step_forward(self, x):
            self.steps += 1
            return x

    net = nn.Sequential(layer.Linear(3, 2), Counter())
    slots = single_step_slots(net)
    slots.step(torch.rand(4, 3))
    with pytest.raises(TypeError, match=r"cannot reset rows of memory 'steps' of 1 \(Counter\): it is int"):
        slots.reset_rows(torch.tensor([1]))


def test_slots_step_must_return_a_tensor():
    class Pair(nn.Module):
        def forward(self, x):
            return x, x

    with pytest.raises(TypeError, match=r"net\(x\) must return the output spikes"):
        spikemax_spikingjelly.SpikingJellySlots(Pair()).step(torch.rand(2, 3))


# --- continuous batching through the engine --------------------------------------------------------------------


@needs_stream
@pytest.mark.parametrize("slots", [1, 3, 50])
def test_stream_early_exit_equals_evaluate(slots):
    net = wired_network("m")
    rule, task = accuracy_rule(net)
    inputs, targets = task.test_inputs[:, :48], task.test_targets[:48]
    report = spikemax_spikingjelly.stream_early_exit(net, inputs, rule, slots=slots, target=targets)
    assert step_modes(net) == ["m", "m"]
    assert_report_equals(report, early_exit.evaluate(rule, recording(net, inputs), targets))


@needs_stream
@pytest.mark.parametrize("slots", [1, 3, 14])
def test_stream_early_exit_of_a_conv_network_equals_evaluate(slots):
    net = conv_network()
    calibration, calibration_labels = conv_inputs(64, seed=1)
    test, labels = conv_inputs(12, seed=2)
    rule = early_exit.calibrate(recording(net, calibration), calibration_labels, method="accuracy", alpha=0.05)
    report = spikemax_spikingjelly.stream_early_exit(net, test, rule, slots=slots, target=labels)
    assert_report_equals(report, early_exit.evaluate(rule, recording(net, test), labels))


@needs_stream
def test_stream_early_exit_passes_device_to_the_engine():
    net = wired_network("m")
    rule, task = accuracy_rule(net)
    inputs, targets = task.test_inputs[:, :12], task.test_targets[:12]
    report = spikemax_spikingjelly.stream_early_exit(net, inputs, rule, slots=4, target=targets, device="cpu")
    assert_report_equals(report, early_exit.evaluate(rule, recording(net, inputs), targets))
    with pytest.raises(RuntimeError, match="nonsense"):  # torch.device's own error: the keyword reaches the engine
        spikemax_spikingjelly.stream_early_exit(net, inputs, rule, slots=4, device="nonsense")


@needs_stream
@pytest.mark.cuda
def test_stream_early_exit_on_cuda_equals_evaluate():
    net = wired_network("m")
    rule, task = accuracy_rule(net)
    inputs, targets = task.test_inputs[:, :48], task.test_targets[:48]
    offline = early_exit.evaluate(rule, recording(net, inputs), targets)
    net = net.cuda()
    report = spikemax_spikingjelly.stream_early_exit(net, inputs.cuda(), rule, slots=5, target=targets.cuda())
    assert report.exit_step.device.type == "cuda"
    assert_report_equals(report, early_exit.evaluate(rule, recording(net, inputs.cuda()), targets.cuda()))
    # inputs on the CPU, moved row by row with device=
    report = spikemax_spikingjelly.stream_early_exit(net, inputs, rule, slots=5, target=targets, device="cuda")
    assert torch.equal(report.prediction.cpu(), offline.prediction)
    assert torch.equal(report.exit_step.cpu(), offline.exit_step)
