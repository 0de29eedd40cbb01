"""The NeuroBench adapter: NeuroBench's own Benchmark, hooks and metrics report the core's numbers, full window and
with early exit; registration into NeuroBench's namespaces; the options are checked.

Every expected value comes from a recording made here (the network stepped over the whole window, its input and
hidden spikes kept) and the core functions, never from the adapter; the NeuroBench numbers are also pinned as the
values measured on this network and data.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from spikemax_plugins import early_exit, metrics, synaptic_operations

from .. import adapter_support as helpers

# The tox core env runs tests/spikemax_plugins only; a run without NeuroBench skips this file.
pytest.importorskip("neurobench", reason="needs NeuroBench")
import neurobench.metrics.workload as workload  # noqa: E402
import neurobench.models as models  # noqa: E402
import snntorch as snn  # noqa: E402
import snntorch.utils  # noqa: E402
import spikemax_neurobench  # noqa: E402
from neurobench.benchmarks import Benchmark  # noqa: E402
from neurobench.metrics.workload import ActivationSparsity, ClassificationAccuracy, SynapticOperations  # noqa: E402
from neurobench.models import SNNTorchModel  # noqa: E402
from spikemax_neurobench import AccuracyOverTime, EarlyExitModel, ExitStep, TimeToDecision  # noqa: E402

NUM_SAMPLES, NUM_STEPS, NUM_INPUTS, NUM_HIDDEN, NUM_CLASSES = 16, 20, 20, 16, 3
BATCH_SIZE = 5  # batches of 5, 5, 5, 1: uneven, so that a mean of batch means would differ from the mean
REGISTERED = {workload: ("TimeToDecision", "AccuracyOverTime", "ExitStep"), models: ("EarlyExitModel",)}


@pytest.fixture
def restore_registration():
    yield
    spikemax_neurobench.unregister()
    spikemax_neurobench.register()


def make_net(seed: int = 0, output_gain: float = 0.6) -> nn.Sequential:
    """Linear 20 -> 16, Leaky, Linear 16 -> 3, Leaky (init_hidden=True): hidden neuron j and output c listen a little
    more to the inputs of class j % 3 and c, so that predictions differ between samples and exits are spread."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Linear(NUM_INPUTS, NUM_HIDDEN), snn.Leaky(beta=0.8, init_hidden=True),
        nn.Linear(NUM_HIDDEN, NUM_CLASSES), snn.Leaky(beta=0.8, init_hidden=True, output=True),
    )
    with torch.no_grad():
        net[0].weight.add_((torch.arange(NUM_HIDDEN)[:, None] % 3 == torch.arange(NUM_INPUTS) % 3) * 0.3)
        net[2].weight.add_((torch.arange(NUM_CLASSES)[:, None] == torch.arange(NUM_HIDDEN) % 3) * output_gain)
    return net


def make_data(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Random input spikes ``[B, T, 20]`` (batch first, NeuroBench's layout), rate 0.5 on the inputs of the
    sample's class (``i % 3``) and 0.15 elsewhere, and the classes ``[B]``."""
    generator = torch.Generator().manual_seed(seed)
    target = torch.randint(0, NUM_CLASSES, (NUM_SAMPLES,), generator=generator)
    rates = torch.where(torch.arange(NUM_INPUTS) % 3 == target[:, None], 0.5, 0.15)
    return torch.bernoulli(rates[:, None].expand(-1, NUM_STEPS, -1), generator=generator), target


def loader(inputs: torch.Tensor, target: torch.Tensor) -> DataLoader:
    return DataLoader(TensorDataset(inputs, target), batch_size=BATCH_SIZE)


def record(net: nn.Module, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The full window, stepped here: hidden spikes ``[T, B, 16]`` and output spikes ``[T, B, 3]`` (time first)."""
    snntorch.utils.reset(net)
    hidden, output = [], []
    hook = net[1].register_forward_hook(lambda module, args, spikes: hidden.append(spikes))
    try:
        with torch.no_grad():
            for step in range(inputs.shape[1]):
                output.append(net(inputs[:, step])[0])
    finally:
        hook.remove()
    return torch.stack(hidden), torch.stack(output)


def hand_rule(threshold: float = 2.0, num_steps: int = NUM_STEPS, num_classes: int = NUM_CLASSES):
    """Exit once one class leads the others by ``threshold`` spikes (the margin score), at any step."""
    return early_exit.ExitRule(
        checkpoints=list(range(num_steps)), thresholds=[threshold] * num_steps, max_set_size=1, score="margin",
        smoothing=1.0, num_classes=num_classes, num_steps=num_steps,
    )


def activation_sparsity(spikes: list[torch.Tensor], until: torch.Tensor) -> float:
    """NeuroBench's ActivationSparsity, written out from the recording: per batch, the share of zero outputs of the
    spiking layers over the (sample, step) pairs simulated (steps ``0..until[b]``), averaged over the batches
    weighted by their size."""
    result = 0.0
    for start in range(0, NUM_SAMPLES, BATCH_SIZE):
        rows = slice(start, start + BATCH_SIZE)
        simulated = torch.arange(NUM_STEPS)[:, None] <= until[None, rows]  # [T, b]
        outputs = sum(int(simulated.sum()) * layer.shape[2] for layer in spikes)
        fired = sum(int((layer[:, rows] != 0)[simulated].sum()) for layer in spikes)
        result += (1 - fired / outputs) * simulated.shape[1] / NUM_SAMPLES
    return result


# --- NeuroBench's numbers are the core's ---------------------------------------------------------------------


def test_synaptic_operations_equal_neurobench_effective_acs_over_the_full_window():
    """The independent check of the energy proxy: NeuroBench's SynapticOperations (its hooks on the Linear layers)
    and the core's synaptic_operations on the input and hidden spikes, fan-out = the next Linear's out_features."""
    net, (inputs, target) = make_net(), make_data()
    hidden, _ = record(net, inputs)
    expected = synaptic_operations([inputs.transpose(0, 1), hidden], [NUM_HIDDEN, NUM_CLASSES]).mean().item()
    results = Benchmark(SNNTorchModel(net), loader(inputs, target), [], [], [[], [SynapticOperations]]).run(quiet=True)
    assert results["SynapticOperations"]["Effective_ACs"] == expected == 1968.0
    assert results["SynapticOperations"]["Effective_MACs"] == 0  # binary inputs and spikes: accumulates only


def test_full_window_metrics_equal_the_core_functions():
    net, (inputs, target) = make_net(), make_data()
    _, output = record(net, inputs)
    results = Benchmark(
        SNNTorchModel(net), loader(inputs, target), [], [], [[], [TimeToDecision, AccuracyOverTime]]
    ).run(quiet=True)

    steps = metrics.time_to_decision(output)
    decided = steps >= 0
    assert results["TimeToDecision"] == {
        "mean_step": pytest.approx(steps[decided].double().mean().item(), abs=1e-12),
        "mean_fraction": pytest.approx(((steps[decided] + 1).double() / NUM_STEPS).mean().item(), abs=1e-12),
        "no_decision_fraction": pytest.approx(1 - decided.double().mean().item(), abs=1e-12),
    }
    assert results["AccuracyOverTime"] == metrics.accuracy_over_time(output, target).tolist()
    assert results["AccuracyOverTime"][-1] == metrics.accuracy(output, target).item() == 0.9375
    assert results["TimeToDecision"]["mean_step"] == pytest.approx(31 / 15)  # 15 decided samples, 1 tie
    # Sums over the batches, not a mean of the batch means (1.6125 here): the batches are 5, 5, 5, 1.
    batch_means = [steps[start:start + BATCH_SIZE][decided[start:start + BATCH_SIZE]].double().mean().item()
                   for start in range(0, NUM_SAMPLES, BATCH_SIZE)]
    assert sum(batch_means) / len(batch_means) != pytest.approx(results["TimeToDecision"]["mean_step"])


def test_early_exit_model_in_benchmark_reports_the_simulated_work_only():
    net, (inputs, target) = make_net(), make_data()
    hidden, output = record(net, inputs)
    rule = hand_rule()
    offline = early_exit.evaluate(rule, output, target)
    model = EarlyExitModel(net, rule, slots=3)
    results = Benchmark(
        model, loader(inputs, target), [], [],
        [[], [ClassificationAccuracy, SynapticOperations, ActivationSparsity, ExitStep]],
    ).run(quiet=True)

    layer_spikes, fan_out = [inputs.transpose(0, 1), hidden], [NUM_HIDDEN, NUM_CLASSES]
    until_exit = synaptic_operations(layer_spikes, fan_out, until=offline.exit_step).mean().item()
    full_window = synaptic_operations(layer_spikes, fan_out).mean().item()
    # ClassificationAccuracy averages float32 batch accuracies: equal to float32 rounding.
    assert results["ClassificationAccuracy"] == pytest.approx(offline.accuracy, abs=1e-6)
    assert offline.accuracy == 0.9375  # sample 1 ties: prediction -1
    assert results["SynapticOperations"]["Effective_ACs"] == until_exit == 717.0
    assert until_exit < full_window == 1968.0
    assert results["ActivationSparsity"] == pytest.approx(activation_sparsity([hidden, output], offline.exit_step))
    assert results["ExitStep"] == {
        "mean_exit_step": pytest.approx(offline.mean_exit_step), "exit_fraction": pytest.approx(offline.exit_fraction)
    }
    assert offline.mean_exit_step == 6.0625 and results["ActivationSparsity"] == pytest.approx(0.65226, abs=1e-5)
    # The last batch's report (the 16th sample alone), kept on the model.
    assert torch.equal(model.last_report.prediction, offline.prediction[-1:])
    assert torch.equal(model.last_report.exit_step, offline.exit_step[-1:])


@pytest.mark.parametrize("slots", [1, 4, 40])
def test_early_exit_model_returns_the_rule_s_predictions(slots):
    net, (inputs, target) = make_net(), make_data()
    _, output = record(net, inputs)
    rule = hand_rule(threshold=4.0)
    offline = early_exit.evaluate(rule, output, target)
    predictions = EarlyExitModel(net, rule, slots=slots)(inputs)
    assert predictions.dtype == torch.int64 and predictions.shape == (NUM_SAMPLES,)
    assert torch.equal(predictions, offline.prediction)


def test_no_decision_is_minus_one_and_counts_as_wrong():
    net, (inputs, target) = make_net(output_gain=0.0), make_data()
    with torch.no_grad():
        net[2].weight.zero_()  # silent outputs: every sample's final counts tie
        net[2].bias.zero_()
    model = EarlyExitModel(net, hand_rule(), slots=4)
    assert torch.equal(model(inputs), torch.full((NUM_SAMPLES,), -1))
    results = Benchmark(model, loader(inputs, target), [], [], [[], [ClassificationAccuracy]]).run(quiet=True)
    assert results["ClassificationAccuracy"] == 0.0


# --- options and mismatches ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "words"),
    [
        ({"net": lambda x: x}, TypeError, "net must be a torch.nn.Module"),
        ({"rule": {"thresholds": [0.5]}}, TypeError, "rule must be an early_exit.ExitRule, got dict"),
        ({"slots": 0}, ValueError, "slots must be an int >= 1, got 0"),
        ({"slots": 2.5}, TypeError, r"slots must be an int >= 1, got 2.5 \(float\)"),
        ({"slots": True}, TypeError, r"slots must be an int >= 1, got True \(bool\)"),
    ],
)
def test_options_are_checked_when_the_model_is_built(options, error, words):
    arguments = {"net": make_net(), "rule": hand_rule(), "slots": 3, **options}
    with pytest.raises(error, match=words):
        EarlyExitModel(arguments.pop("net"), arguments.pop("rule"), **arguments)


def test_rule_that_does_not_fit_the_data_or_network_is_refused():
    net, (inputs, _) = make_net(), make_data()
    with pytest.raises(ValueError, match=r"rule's T = 12 steps at time_dim=1, got 20"):
        EarlyExitModel(net, hand_rule(num_steps=12), slots=3)(inputs)
    with pytest.raises(ValueError, match=r"N a multiple of C = 4 \(the output spikes of one step\), got shape \(3,"):
        EarlyExitModel(net, hand_rule(num_classes=4), slots=3)(inputs)


def test_metrics_refuse_predictions_instead_of_spikes():
    """Benchmark prints a metric's exception and records 0.0, so the message must say what to use instead."""
    net, (inputs, target) = make_net(), make_data()
    model = EarlyExitModel(net, hand_rule(), slots=3)
    predictions = model(inputs)
    for metric in (TimeToDecision(), AccuracyOverTime()):
        with pytest.raises(ValueError, match=r"output spikes \[B, T, C\].*got shape \(16,\).*ExitStep"):
            metric(model, predictions, (inputs, target))
    with pytest.raises(TypeError, match="ExitStep reads the ExitReport of an EarlyExitModel, got model SNNTorchModel"):
        ExitStep()(SNNTorchModel(net), predictions, (inputs, target))


def test_population_code_by_subclass():
    net, (inputs, target) = make_net(), make_data()
    _, output = record(net, inputs)
    doubled = torch.repeat_interleave(output, 2, dim=2).transpose(0, 1)  # [B, T, 6]: 2 neurons a class

    class AccuracyOverTime3(AccuracyOverTime):
        num_classes = 3

    metric = AccuracyOverTime3()
    assert metric(None, doubled, (inputs, target)) == metrics.accuracy_over_time(output, target).tolist()


# --- registration ------------------------------------------------------------------------------------------------


def test_import_registers_the_metrics_and_the_model():
    helpers.assert_import_registered(spikemax_neurobench, REGISTERED)
    assert "TimeToDecision" in workload.__all__ and "EarlyExitModel" in models.__all__


def test_register_is_idempotent_and_never_overwrites(restore_registration):
    helpers.assert_register_is_idempotent(spikemax_neurobench, REGISTERED)
    helpers.assert_unregister_removes_only_ours(
        spikemax_neurobench, REGISTERED, {workload: "SynapticOperations", models: "SNNTorchModel"}
    )
    helpers.assert_never_overwrites(spikemax_neurobench, REGISTERED, workload, "TimeToDecision")


def test_registered_metrics_are_found_by_neurobench_s_string_names(capsys):
    from neurobench.metrics.manager.workload_manager import WorkloadMetricManager

    manager = WorkloadMetricManager(["time_to_decision", "accuracy_over_time"])
    assert [type(metric) for metric in manager.metrics.values()] == [TimeToDecision, AccuracyOverTime]
    assert "DEPRECATION WARNING" in capsys.readouterr().out  # NeuroBench's own note on string names


def test_missing_host_raises_import_error_naming_the_extra():
    helpers.assert_missing_host_names_the_extra(
        "spikemax_neurobench", "neurobench", "neurobench", "spikemax_neurobench needs NeuroBench"
    )


def test_adapter_imports_no_other_host():
    for other in ("norse", "spikingjelly", "sinabs"):
        helpers.assert_never_imports("spikemax_neurobench", other)


# --- CUDA ------------------------------------------------------------------------------------------------------------


@pytest.mark.cuda
def test_benchmark_on_cuda_equals_the_cpu_run():
    net, (inputs, target) = make_net(), make_data()
    metric_list = [[], [ClassificationAccuracy, SynapticOperations, ActivationSparsity, ExitStep]]
    on_cpu = Benchmark(EarlyExitModel(net, hand_rule(), slots=3), loader(inputs, target), [], [], metric_list)
    expected = on_cpu.run(quiet=True)
    on_cuda = Benchmark(EarlyExitModel(net, hand_rule(), slots=3), loader(inputs, target), [], [], metric_list)
    results = on_cuda.run(quiet=True, device="cuda")
    assert next(net.parameters()).device.type == "cuda"
    assert results["SynapticOperations"] == expected["SynapticOperations"]
    assert results["ClassificationAccuracy"] == pytest.approx(expected["ClassificationAccuracy"], abs=1e-6)
    assert results["ActivationSparsity"] == pytest.approx(expected["ActivationSparsity"])
    assert results["ExitStep"] == expected["ExitStep"]
