"""NetworkSlots: the bench's networks as early_exit.SlotNetwork, both frameworks. Streamed through the engine,
every sample is decided as evaluate decides it on the full recording, whatever the slot count: a row that takes a
new sample starts from the reset state, and dropped rows take no state with them."""

from __future__ import annotations

import pytest
import torch

from spikemax_bench.models.slots import NetworkSlots
from spikemax_plugins import early_exit

from .synthetic import TIME_STEPS, spiking_network, synthetic_dataset


@pytest.mark.parametrize("framework", ["snntorch", "norse"])
@pytest.mark.parametrize("slots", [1, 3, 8, 40])
def test_streamed_slots_decide_as_the_full_recording(framework, slots):
    network = spiking_network(framework)
    frames = torch.stack([frame for frame, _ in synthetic_dataset().test], 1)[:, :17]  # [T, 17, features]
    with torch.no_grad():
        recording = network(frames).output  # [T, 17, C]
    # A rule that exits at different steps for different samples, so rows are reset and dropped at many calls.
    rule = early_exit.calibrate(recording, recording.sum(0).argmax(-1), method="accuracy", alpha=0.3)
    expected = early_exit.evaluate(rule, recording)
    assert expected.exit_step.unique().numel() > 2 and int(expected.exit_step.max()) <= TIME_STEPS - 1
    report = early_exit.stream(NetworkSlots(network), frames, rule, slots=slots)
    assert torch.equal(report.exit_step, expected.exit_step)
    assert torch.equal(report.prediction, expected.prediction)
    assert torch.equal(report.prediction_set, expected.prediction_set)
    assert report.sample_steps_simulated == int((expected.exit_step + 1).sum())
