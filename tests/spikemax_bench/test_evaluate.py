"""The bench's evaluation streams: the same numbers as concatenating the whole split, memory that does not grow
with the split, and early exit calibrated on the validation split and measured on the test split, each measure
equal to its computation on the whole recording."""

from __future__ import annotations

import gc
import warnings
from dataclasses import asdict

import pytest
import torch

from spikemax_bench.evaluate import evaluate, evaluate_trained
from spikemax_bench.loaders import make_loader
from spikemax_bench.measures import EARLY_EXIT_METRICS, EARLY_EXIT_RULES
from spikemax_bench.models import FRAMEWORKS
from spikemax_bench.summary import summarise_early_exit
from spikemax_plugins import early_exit, metrics

from .synthetic import SIZES, TIME_STEPS, spiking_network, synthetic_dataset

CPU = torch.device("cpu")


@torch.no_grad()
def concatenating_evaluate(network, loader, device) -> dict:
    """The bench's ``evaluate`` before it streamed (commit 41b6b12), verbatim but for the return value: it keeps
    every batch's output spikes and labels, concatenates them and measures the whole split at once."""
    network.eval()
    outputs, labels = [], []
    hidden_spikes = input_spikes = input_operations = hidden_operations = 0.0
    for frames, batch_labels in loader:
        spikes = network(frames.to(device))
        outputs.append(spikes.output.cpu())
        labels.append(batch_labels)
        hidden_layers = spikes.layers[:-1]
        hidden_spikes += sum(layer.sum().item() for layer in hidden_layers)
        input_spikes += spikes.input.sum().item()
        input_operations += metrics.synaptic_operations([spikes.input], network.fan_out[:1]).sum().item()
        if hidden_layers:
            hidden_operations += metrics.synaptic_operations(hidden_layers, network.fan_out[1:]).sum().item()
    output = torch.cat(outputs, dim=1)
    target = torch.cat(labels)
    num_steps, samples = output.shape[:2]
    decision_steps = metrics.time_to_decision(output)
    decided = decision_steps >= 0
    steps_seen = (decision_steps[decided] + 1).double().mean().item() if decided.any() else None
    correct = int((metrics.predict(output) == target).sum().item())
    output_spikes = output.sum().item()
    return {
        "accuracy": correct / samples,
        "accuracy_over_time": metrics.accuracy_over_time(output, target).tolist(),
        "steps_to_decision": steps_seen,
        "time_to_decision_fraction": None if steps_seen is None else steps_seen / num_steps,
        "no_decision_fraction": 1.0 - decided.double().mean().item(),
        "output_spikes_per_sample": output_spikes / samples,
        "hidden_spikes_per_sample": hidden_spikes / samples,
        "network_spikes_per_sample": (hidden_spikes + output_spikes) / samples,
        "hidden_synaptic_operations_per_sample": hidden_operations / samples,
        "input_spikes_per_sample": input_spikes / samples,
        "input_synaptic_operations_per_sample": input_operations / samples,
        "synaptic_operations_per_sample": (input_operations + hidden_operations) / samples,
        "correct": correct,
        "samples": samples,
    }


# ------------------------------------------------------------------------------------------ streaming


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("batch_size", [7, 64])  # many batches with a short last one; the whole split in one
def test_streaming_evaluation_gives_the_concatenating_numbers_exactly(framework, batch_size):
    network = spiking_network(framework)
    loader = make_loader(synthetic_dataset().test, batch_size, shuffle=False, seed=0)
    expected = concatenating_evaluate(network, loader, CPU)
    # Not a degenerate case: right and wrong answers, early and late decisions, and ties.
    assert 0.3 < expected["accuracy"] < 0.9 and expected["samples"] == SIZES["test"]
    assert 0.0 < expected["no_decision_fraction"] < 0.2
    assert 2.0 < expected["steps_to_decision"] < TIME_STEPS - 2
    assert expected["hidden_spikes_per_sample"] > 10 * expected["output_spikes_per_sample"] > 0
    assert asdict(evaluate(network, loader, CPU)) == expected


class ManyBatches:
    """A loader that yields the same batch ``batches`` times and, just before yielding batch ``i`` of ``probes``,
    records the bytes of every tensor alive in the interpreter (``held[i]``)."""

    def __init__(self, frames, labels, batches: int, probes: tuple[int, ...]) -> None:
        self.frames, self.labels, self.batches, self.probes = frames, labels, batches, probes
        self.held: dict[int, int] = {}

    def __iter__(self):
        for index in range(self.batches):
            if index in self.probes:
                self.held[index] = live_tensor_bytes()
            yield self.frames.clone(), self.labels.clone()


def live_tensor_bytes() -> int:
    """Bytes of the distinct storages of every tensor the garbage collector can see."""
    gc.collect()
    storages = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # isinstance() on some torch proxies warns about deprecated names
        for item in gc.get_objects():
            if isinstance(item, torch.Tensor) and not item.is_meta:
                storage = item.untyped_storage()
                storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


@pytest.mark.parametrize("function", [evaluate, concatenating_evaluate])
def test_memory_does_not_grow_with_the_split(function):
    # 150 batches of 16 samples: between batches 10 and 149 the concatenating evaluation keeps 139 more
    # [12, 16, 3] float32 outputs (320 kB) and their labels (18 kB); the streaming one keeps sums and counts only.
    network = spiking_network()
    frames, labels = next(iter(make_loader(synthetic_dataset().test, 16, shuffle=False, seed=0)))
    loader = ManyBatches(frames, labels, batches=150, probes=(10, 149))
    function(network, loader, CPU)
    growth = loader.held[149] - loader.held[10]
    if function is evaluate:
        assert growth < 4_000  # nothing that grows with the batches seen
    else:
        assert growth > 300_000  # the probe sees what a concatenating evaluation keeps


# ------------------------------------------------------------------------------------------ early exit


@torch.no_grad()
def whole_recording(network, split):
    """The network's spikes on a whole split in one batch, and the labels."""
    frames, labels = next(iter(make_loader(split, len(split), shuffle=False, seed=0)))
    return network(frames), labels


def test_early_exit_is_calibrated_on_validation_and_measured_on_test_as_on_the_whole_recording():
    dataset = synthetic_dataset()
    network = spiking_network()
    record = evaluate_trained(network, dataset, batch_size=16, device=CPU)
    assert record["early_exit"]["calibration"] == {"split": "validation", "samples": SIZES["validation"]}
    validation, validation_labels = whole_recording(network, dataset.validation)
    test, labels = whole_recording(network, dataset.test)
    samples = SIZES["test"]
    full_hidden = metrics.synaptic_operations(test.layers[:-1], network.fan_out[1:]).sum().item()
    full_input = metrics.synaptic_operations([test.input], network.fan_out[:1]).sum().item()
    full_spikes = sum(layer.sum().item() for layer in test.layers)
    entries = record["early_exit"]["rules"]
    assert [(entry["method"], entry["alpha"]) for entry in entries] == list(EARLY_EXIT_RULES)
    for (method, alpha), entry in zip(EARLY_EXIT_RULES, entries, strict=True):
        rule = early_exit.calibrate(validation.output, validation_labels, method=method, alpha=alpha)
        assert entry["rule"] == rule.to_dict() and entry["error"] is None
        assert entry["rule"]["calibration_size"] == SIZES["validation"]  # never the test split's 53
        report = early_exit.evaluate(rule, test.output, labels)
        assert entry["accuracy"] == report.accuracy
        assert entry["coverage"] == report.coverage
        assert entry["mean_exit_step"] == report.mean_exit_step
        assert entry["exit_fraction"] == pytest.approx(report.exit_fraction, rel=1e-12, abs=0)
        assert entry["mean_set_size"] == report.prediction_set.sum().item() / samples
        until = report.exit_step
        hidden = metrics.synaptic_operations(test.layers[:-1], network.fan_out[1:], until=until).sum().item()
        inputs = metrics.synaptic_operations([test.input], network.fan_out[:1], until=until).sum().item()
        used = (torch.arange(TIME_STEPS).view(-1, 1) <= until.view(1, -1)).float()  # [T, B]: steps up to the exit
        spikes = sum((layer.sum(-1) * used).sum().item() for layer in test.layers)
        assert entry["hidden_synaptic_operations_per_sample"] == hidden / samples
        assert entry["input_synaptic_operations_per_sample"] == inputs / samples
        assert entry["synaptic_operations_per_sample"] == (inputs + hidden) / samples
        assert entry["network_spikes_per_sample"] == spikes / samples
        assert entry["hidden_synaptic_operations_share"] == hidden / full_hidden
        assert entry["synaptic_operations_share"] == (inputs + hidden) / (full_input + full_hidden)
        assert entry["network_spikes_share"] == spikes / full_spikes
    # The full window stays what evaluate() measures; the rules exit early (accuracy) or late (conformal).
    assert record["test"] == asdict(evaluate(network, make_loader(dataset.test, 16, shuffle=False, seed=0), CPU))
    assert entries[2]["exit_fraction"] < 0.6 and entries[-1]["exit_fraction"] > 0.9
    assert entries[-1]["coverage"] >= 0.9 and entries[-1]["mean_set_size"] > 1


def test_a_rule_that_cannot_be_calibrated_is_recorded_with_the_reason():
    dataset = synthetic_dataset(validation=30)  # the conformal rule needs 39 calibration samples
    record = evaluate_trained(spiking_network(), dataset, batch_size=16, device=CPU)
    *accuracy_rules, conformal = record["early_exit"]["rules"]
    assert conformal["rule"] is None
    assert "calibration set of n = 30 samples is too small" in conformal["error"]
    assert "n >= 39" in conformal["error"]
    assert all(conformal[name] is None for name in EARLY_EXIT_METRICS)
    assert all(entry["rule"]["calibration_size"] == 30 for entry in accuracy_rules)
    assert all(0.0 <= entry["accuracy"] <= 1.0 for entry in accuracy_rules)


def test_the_summary_averages_each_rule_over_the_seeds():
    def seed(accuracy: float, share: float | None) -> dict:
        rules = [
            {"method": method, "alpha": alpha, "rule": {} if share is not None else None,
             **dict.fromkeys(EARLY_EXIT_METRICS, share), "accuracy": accuracy}
            for method, alpha in EARLY_EXIT_RULES
        ]  # fmt: skip
        return {"rules": rules}

    summary = summarise_early_exit([seed(0.8, 0.25), seed(0.9, 0.75), seed(0.7, None)])
    headline = summary[2]
    assert (headline["method"], headline["alpha"], headline["calibrated_seeds"]) == ("accuracy", 0.01, 2)
    assert headline["accuracy"]["mean"] == pytest.approx(0.8) and headline["accuracy"]["std"] == pytest.approx(0.1)
    assert headline["exit_fraction"] == {"mean": 0.5, "std": pytest.approx(0.3535533905932738)}
    with pytest.raises(ValueError, match="every seed must list the same early-exit rules"):
        summarise_early_exit([seed(0.8, 0.5), {"rules": seed(0.8, 0.5)["rules"][::-1]}])
