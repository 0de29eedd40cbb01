"""The bench's evaluation streams: the same numbers as concatenating the whole split, and memory that does not grow
with the split."""

from __future__ import annotations

import gc
import warnings
from dataclasses import asdict

import pytest
import torch

from spikemax_plugins import metrics
from spikemax_plugins.bench.models import FRAMEWORKS
from spikemax_plugins.bench.run import evaluate, make_loader

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
