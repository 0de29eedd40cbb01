"""The sinabs adapter: batch-first and squeezed losses equal the core's, a network that learns, early exit."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import spikemax_plugins
from spikemax_plugins import early_exit, functional

from .. import adapter_support as helpers
from ..adapter_support import NUM_CLASSES, NUM_INPUTS, assert_same, loss_cases

# The tox core env runs tests/spikemax_plugins only; a run without sinabs skips this file.
sinabs = pytest.importorskip("sinabs", reason="needs sinabs")
import sinabs.activation as sa  # noqa: E402
import sinabs.layers as sl  # noqa: E402
import spikemax_sinabs  # noqa: E402

MODULE_NAMES = ("SpikeMaxGLoss", "SpikeMaxSLoss", "MSECountLoss")
REGISTERED = {sinabs: MODULE_NAMES}
needs_stream = pytest.mark.skipif(not hasattr(early_exit, "stream"), reason="engine not merged yet")


@pytest.fixture
def restore_registration():
    yield
    spikemax_sinabs.unregister()
    spikemax_sinabs.register()


# --- registration ----------------------------------------------------------------------------------------------


def test_import_registers_the_loss_modules():
    helpers.assert_import_registered(spikemax_sinabs, REGISTERED)


def test_register_is_idempotent_and_never_overwrites(restore_registration):
    helpers.assert_register_is_idempotent(spikemax_sinabs, REGISTERED)
    helpers.assert_unregister_removes_only_ours(spikemax_sinabs, REGISTERED, {sinabs: "reset_states"})
    helpers.assert_never_overwrites(spikemax_sinabs, REGISTERED, sinabs, "SpikeMaxGLoss")


def test_missing_host_raises_import_error_naming_the_extra():
    helpers.assert_missing_host_names_the_extra("spikemax_sinabs", "sinabs", "sinabs", "spikemax_sinabs needs sinabs")


def test_adapter_imports_no_other_host():
    for other in ("snntorch", "norse", "spikingjelly"):
        helpers.assert_never_imports("spikemax_sinabs", other)


# --- the core's numbers, batch first and squeezed ------------------------------------------------------------------


def squeezed(spikes_time_first: torch.Tensor) -> torch.Tensor:
    """[T, B, N] -> what a Squeeze layer returns, [B*T, N] (row b*T + t)."""
    return spikes_time_first.transpose(0, 1).reshape(-1, spikes_time_first.shape[-1])


@pytest.mark.parametrize("kind", ["SpikeMaxGLoss", "SpikeMaxSLoss"])
@given(data=st.data())
def test_spikemax_losses_equal_the_core_batch_first_and_squeezed(kind, data):
    spikes, target, options = data.draw(loss_cases(sliding=kind == "SpikeMaxSLoss"))
    expected = getattr(spikemax_plugins, kind)(**options)(spikes, target)  # core, time first
    ours = getattr(sinabs, kind)
    num_steps, batch_size = spikes.shape[:2]
    assert_same(ours(**options)(spikes.transpose(0, 1), target), expected)
    assert_same(ours(**options, num_timesteps=num_steps)(squeezed(spikes), target), expected)
    assert_same(ours(**options, batch_size=batch_size)(squeezed(spikes), target), expected)
    assert_same(ours(**options, time_dim=0)(spikes, target), expected)


@given(loss_cases(sliding=False), st.sampled_from([0.0, 0.2, 0.8]))
def test_mse_count_equals_the_core_batch_first_and_squeezed(case, true_rate):
    spikes, target, spikemax_options = case
    options = {"true_rate": true_rate, "false_rate": 0.05, "weight": spikemax_options["weight"],
               "num_classes": spikemax_options["num_classes"], "reduction": spikemax_options["reduction"]}
    expected = functional.mse_count(spikes, target, **options)
    assert_same(sinabs.MSECountLoss(**options)(spikes.transpose(0, 1), target), expected)
    assert_same(sinabs.MSECountLoss(**options, num_timesteps=spikes.shape[0])(squeezed(spikes), target), expected)


def test_squeezed_output_of_a_squeeze_layer_equals_the_unsqueezed_layer():
    torch.manual_seed(0)
    inputs = torch.rand(3, 7, 5) * 3  # [B, T, N]
    plain = sl.IAF()(inputs)
    squeezed_output = sl.IAFSqueeze(num_timesteps=7)(inputs.reshape(21, 5))
    target = torch.tensor([0, 4, 2])
    expected = spikemax_sinabs.SpikeMaxGLoss()(plain, target)
    assert_same(spikemax_sinabs.SpikeMaxGLoss(num_timesteps=7)(squeezed_output, target), expected)
    assert_same(spikemax_sinabs.SpikeMaxGLoss(batch_size=3)(squeezed_output, target), expected)
    assert_same(spikemax_sinabs.unsqueeze(squeezed_output, num_timesteps=7), plain)


def test_graded_multispike_counts_are_accepted():
    inputs = torch.rand(4, 6, 3) * 5
    spikes = sl.IAF(spike_fn=sa.MultiSpike)(inputs)
    assert spikes.max() > 1, "MultiSpike should emit several spikes in one step here"
    target = torch.tensor([0, 1, 2, 0])
    assert_same(sinabs.SpikeMaxGLoss()(spikes, target), functional.spikemax_g(spikes, target, time_dim=1))
    assert torch.isfinite(sinabs.MSECountLoss(true_rate=0.5, false_rate=0.0)(spikes, target))


def test_loss_gradient_equals_the_core():
    target = torch.tensor([0, 3, 1])
    helpers.assert_same_loss_and_gradient(
        lambda spikes: sinabs.SpikeMaxGLoss(num_timesteps=6)(spikes.transpose(0, 1).reshape(18, 4), target),
        lambda spikes: functional.spikemax_g(spikes, target),
        torch.rand(6, 3, 4, dtype=torch.float64),
    )


def test_modules_subclass_the_core_and_keep_weight_a_buffer():
    for name in MODULE_NAMES:
        assert issubclass(getattr(spikemax_sinabs, name), getattr(spikemax_plugins, name))
    weight = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert_same(sinabs.SpikeMaxSLoss(window=3, weight=weight).state_dict()["weight"], weight)


@pytest.mark.parametrize(
    "build, error, words",
    [
        (lambda: sinabs.SpikeMaxGLoss(num_timesteps=4, batch_size=2), ValueError, ["exactly one", "batch_size=2"]),
        (lambda: sinabs.SpikeMaxGLoss(num_timesteps=0), ValueError, ["num_timesteps", ">= 1"]),
        (lambda: sinabs.SpikeMaxGLoss(batch_size=2.5), TypeError, ["batch_size", "float"]),
        (lambda: sinabs.SpikeMaxGLoss(num_timesteps=True), TypeError, ["num_timesteps"]),
        (lambda: sinabs.SpikeMaxGLoss(num_timesteps=4, time_dim=0), ValueError, ["time_dim must be 1"]),
        (lambda: sinabs.SpikeMaxGLoss(mode="bad"), ValueError, ["mode", "'bad'"]),
        (lambda: sinabs.SpikeMaxSLoss(window=0), ValueError, ["window", ">= 1"]),
        (lambda: sinabs.MSECountLoss(true_rate=-1, false_rate=0), ValueError, ["true_rate", ">= 0"]),
    ],
)
def test_options_are_checked_when_the_module_is_built(build, error, words):
    with pytest.raises(error) as raised:
        build()
    for word in words:
        assert word in str(raised.value), f"{word!r} not in {raised.value}"


def test_squeezed_loss_names_a_wrong_shape():
    with pytest.raises(ValueError, match=r"Squeeze layer's output \[B\*T, N\].*num_timesteps=4.*\(2, 4, 3\)"):
        sinabs.SpikeMaxGLoss(num_timesteps=4)(torch.rand(2, 4, 3), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"B\*T a multiple of num_timesteps=4, got shape \(6, 3\)"):
        sinabs.SpikeMaxGLoss(num_timesteps=4)(torch.rand(6, 3), torch.tensor([0, 1]))


# --- a small sinabs classifier learns ------------------------------------------------------------------------------


def iaf_classifier() -> nn.Module:
    # sinabs' defaults: MultiSpike, so the losses see graded counts during training too.
    return nn.Sequential(nn.Linear(NUM_INPUTS, 32), sl.IAF(), nn.Linear(32, NUM_CLASSES), sl.IAF())


def lif_classifier() -> nn.Module:
    # LIF scales its input by (1 - exp(-1 / tau_mem)) by default, which leaves this small network silent.
    def lif():
        return sl.LIF(tau_mem=5.0, norm_input=False, spike_threshold=0.5, spike_fn=sa.SingleSpike)

    return nn.Sequential(nn.Linear(NUM_INPUTS, 32), lif(), nn.Linear(32, NUM_CLASSES), lif())


def batch_first_output(net: nn.Module, inputs_time_first: torch.Tensor) -> torch.Tensor:
    sinabs.reset_states(net)
    return net(inputs_time_first.transpose(0, 1)).transpose(0, 1)  # the helper reads [T, B, C]


@pytest.mark.slow
@pytest.mark.parametrize("build", [iaf_classifier, lif_classifier], ids=["IAF-MultiSpike", "LIF-SingleSpike"])
def test_classifier_learns(build):
    loss_fn = sinabs.SpikeMaxGLoss(time_dim=0)  # the helper hands the loss [T, B, C]
    result = helpers.train_and_evaluate(build, batch_first_output, loss_fn, helpers.separable_spikes(), "cpu")
    print(f"final loss {result.losses[-1]:.3f}, test accuracy {result.test_accuracy:.3f}")
    helpers.assert_learned(result)
    assert result.test_accuracy >= 0.9


# --- early exit ------------------------------------------------------------------------------------------------


def wired_network() -> nn.Module:
    return nn.Sequential(helpers.wire_classes(nn.Linear(NUM_INPUTS, NUM_CLASSES), gain=2.0),
                         sl.LIF(tau_mem=2.0, spike_threshold=0.5))


def squeeze_network() -> nn.Module:
    return nn.Sequential(helpers.wire_classes(nn.Linear(NUM_INPUTS, NUM_CLASSES), gain=2.0),
                         sl.IAFSqueeze(num_timesteps=20, spike_threshold=1.0))


def recording(net: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """The full recording [B, T, C] of ``net(x)``, x [B, T, ...] (squeezed networks: flattened and back)."""
    sinabs.reset_states(net)
    with torch.no_grad():
        squeeze = [module for module in net.modules() if isinstance(module, sl.SqueezeMixin)]
        if squeeze:
            return spikemax_sinabs.unsqueeze(net(inputs.flatten(0, 1)), num_timesteps=inputs.shape[1])
        return net(inputs)


def batch_first_task(seed: int = 3):
    task = helpers.separable_spikes(seed=seed)
    return (task.train_inputs.transpose(0, 1), task.train_targets, task.test_inputs.transpose(0, 1),
            task.test_targets)


def assert_report_equals(report: early_exit.ExitReport, offline: early_exit.ExitReport) -> None:
    assert torch.equal(report.prediction, offline.prediction)
    assert torch.equal(report.exit_step, offline.exit_step)
    assert torch.equal(report.prediction_set, offline.prediction_set)
    assert report.accuracy == offline.accuracy
    assert report.coverage == offline.coverage


@pytest.mark.parametrize("build", [wired_network, squeeze_network], ids=["LIF", "IAFSqueeze"])
def test_run_early_exit_equals_evaluate(build):
    net = build()
    calibration, calibration_labels, test, labels = batch_first_task()
    rule = early_exit.calibrate(recording(net, calibration), calibration_labels, method="accuracy", alpha=0.02,
                                time_dim=1)
    report = spikemax_sinabs.run_early_exit(net, test, rule, target=labels)
    recorded = recording(net, test)
    offline = early_exit.evaluate(rule, recorded, labels, time_dim=1)
    assert_report_equals(report, offline)
    assert_report_equals(report, early_exit.evaluate(rule, recorded.transpose(0, 1), labels))
    assert report.accuracy > 0.9 and report.exit_fraction < 0.6
    time_first = spikemax_sinabs.run_early_exit(net, test.transpose(0, 1), rule, target=labels, time_dim=0)
    assert_report_equals(time_first, offline)
    squeeze_layers = [module for module in net.modules() if isinstance(module, sl.SqueezeMixin)]
    assert all((module.batch_size, module.num_timesteps) == (-1, 20) for module in squeeze_layers)


def test_the_states_are_reset_first():
    net = wired_network()
    calibration, calibration_labels, test, labels = batch_first_task()
    rule = early_exit.calibrate(recording(net, calibration), calibration_labels, method="accuracy", alpha=0.02,
                                time_dim=1)
    expected = spikemax_sinabs.run_early_exit(net, test, rule, target=labels)
    net(test * 5)  # leaves charged membranes behind
    assert_report_equals(spikemax_sinabs.run_early_exit(net, test, rule, target=labels), expected)


def test_bad_arguments_are_named():
    net = wired_network()
    calibration, calibration_labels, test, _ = batch_first_task()
    rule = early_exit.calibrate(recording(net, calibration), calibration_labels, method="accuracy", alpha=0.02,
                                time_dim=1)
    with pytest.raises(TypeError, match="net must be a torch.nn.Module"):
        spikemax_sinabs.run_early_exit(lambda x: x, test, rule)
    with pytest.raises(ValueError, match="inputs must have the rule's T = 20 steps, got 7"):
        spikemax_sinabs.run_early_exit(net, test[:, :7], rule)
    with pytest.raises(ValueError, match=r"net fed one time step \[B, 1, \.\.\.\] must return \[B, 1, N\]"):
        spikemax_sinabs.run_early_exit(nn.Sequential(nn.Flatten(), nn.Linear(NUM_INPUTS, 4)), test, rule)
    with pytest.raises(TypeError, match="net must be a torch.nn.Module"):
        spikemax_sinabs.SinabsSlots(None)


# --- continuous batching: SinabsSlots ------------------------------------------------------------------------------


def random_network() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(NUM_INPUTS, 16), sl.LIF(tau_mem=4.0, tau_syn=2.0, spike_threshold=0.3),
                         nn.Linear(16, NUM_CLASSES), sl.IAF(spike_threshold=0.3))


def test_slots_reset_and_keep_rows_exactly():
    net = random_network()
    inputs = helpers.separable_spikes(seed=1, num_test=5).test_inputs  # [T, 5, NUM_INPUTS]

    def make_slots():
        sinabs.reset_states(net)
        return spikemax_sinabs.SinabsSlots(net)

    helpers.assert_slot_rows_follow_fresh_runs(
        make_slots, lambda x: recording(net, x.transpose(0, 1)).transpose(0, 1), inputs
    )


def test_keep_rows_resizes_every_state_buffer():
    net = random_network()
    slots = spikemax_sinabs.SinabsSlots(net)
    sinabs.reset_states(net)
    slots.step(torch.rand(4, NUM_INPUTS) * 3)
    v_mem, i_syn = net[1].v_mem.clone(), net[1].i_syn.clone()
    slots.keep_rows(torch.tensor([1, 3]))
    assert torch.equal(net[1].v_mem, v_mem[[1, 3]]) and torch.equal(net[1].i_syn, i_syn[[1, 3]])
    assert net[3].v_mem.shape == (2, NUM_CLASSES)
    slots.reset_rows(torch.tensor([0]))
    assert torch.equal(net[1].v_mem[0], torch.zeros(16)) and torch.equal(net[1].v_mem[1], v_mem[3])


def test_slots_refuse_a_state_of_another_batch_size():
    net = random_network()
    slots = spikemax_sinabs.SinabsSlots(net)
    slots.step(torch.rand(4, NUM_INPUTS))
    net[1].v_mem = torch.zeros(3, 16)
    with pytest.raises(ValueError, match=r"cannot keep rows of state 'v_mem' of 1 \(LIF\): its shape \(3, 16\)"):
        slots.keep_rows(torch.tensor([0]))


# --- continuous batching through the engine --------------------------------------------------------------------


@needs_stream
@pytest.mark.parametrize("slots", [1, 3, 50])
@pytest.mark.parametrize("build", [wired_network, squeeze_network], ids=["LIF", "IAFSqueeze"])
def test_stream_early_exit_equals_evaluate(build, slots):
    net = build()
    calibration, calibration_labels, test, labels = batch_first_task()
    test, labels = test[:48], labels[:48]
    rule = early_exit.calibrate(recording(net, calibration), calibration_labels, method="accuracy", alpha=0.02,
                                time_dim=1)
    report = spikemax_sinabs.stream_early_exit(net, test, rule, slots=slots, target=labels)
    assert_report_equals(report, early_exit.evaluate(rule, recording(net, test), labels, time_dim=1))


@needs_stream
def test_stream_early_exit_passes_device_to_the_engine():
    net = wired_network()
    calibration, calibration_labels, test, labels = batch_first_task()
    test, labels = test[:12], labels[:12]
    rule = early_exit.calibrate(recording(net, calibration), calibration_labels, method="accuracy", alpha=0.02,
                                time_dim=1)
    report = spikemax_sinabs.stream_early_exit(net, test, rule, slots=4, target=labels, device="cpu")
    assert_report_equals(report, early_exit.evaluate(rule, recording(net, test), labels, time_dim=1))
    with pytest.raises(RuntimeError, match="nonsense"):  # torch.device's own error: the keyword reaches the engine
        spikemax_sinabs.stream_early_exit(net, test, rule, slots=4, device="nonsense")


@needs_stream
@pytest.mark.cuda
@pytest.mark.parametrize("build", [wired_network, squeeze_network], ids=["LIF", "IAFSqueeze"])
def test_stream_early_exit_on_cuda_equals_evaluate(build):
    net = build()
    calibration, calibration_labels, test, labels = batch_first_task()
    test, labels = test[:48], labels[:48]
    rule = early_exit.calibrate(recording(net, calibration), calibration_labels, method="accuracy", alpha=0.02,
                                time_dim=1)
    offline = early_exit.evaluate(rule, recording(net, test), labels, time_dim=1)
    net = net.cuda()
    report = spikemax_sinabs.stream_early_exit(net, test.cuda(), rule, slots=5, target=labels.cuda())
    assert report.exit_step.device.type == "cuda"
    assert_report_equals(report, early_exit.evaluate(rule, recording(net, test.cuda()), labels.cuda(), time_dim=1))
    # inputs on the CPU, moved row by row with device=
    report = spikemax_sinabs.stream_early_exit(net, test, rule, slots=5, target=labels, device="cuda")
    assert torch.equal(report.prediction.cpu(), offline.prediction)
    assert torch.equal(report.exit_step.cpu(), offline.exit_step)


def test_keeping_no_rows_leaves_the_network_usable():
    net = random_network()
    slots = spikemax_sinabs.SinabsSlots(net)
    slots.step(torch.rand(4, NUM_INPUTS))
    slots.keep_rows(torch.tensor([], dtype=torch.int64))
    assert net[1].v_mem.shape == (0,)  # sinabs' uninitialised state
    sinabs.reset_states(net)
    assert net(torch.rand(3, 5, NUM_INPUTS)).shape == (3, 5, NUM_CLASSES)
