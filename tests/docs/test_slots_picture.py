"""The picture of the engine's rows over time (docs/render_slots.py): its trace is what continuous batching does,
simulated independently, and the committed picture is what the script draws."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from spikemax_plugins import early_exit

from ..stream_support import continuous_batching_schedule

DOCS = Path(__file__).resolve().parents[2] / "docs"
sys.path.insert(0, str(DOCS))
import render_slots  # noqa: E402


def test_the_stream_trace_is_the_continuous_batching_schedule_and_decides_as_evaluate():
    calls, report = render_slots.stream_trace()
    recording, rule = render_slots.example()
    expected = early_exit.evaluate(rule, recording)
    assert torch.equal(report.exit_step, expected.exit_step) and torch.equal(report.prediction, expected.prediction)
    exits = expected.exit_step.tolist()
    assert [sorted(rows) for rows in calls] == continuous_batching_schedule(exits, render_slots.SLOTS)
    assert len(calls) == 33 and 0.15 < expected.exit_fraction < 0.2  # what the page says of the picture
    # Every sample is stepped exactly up to its exit step, never beyond.
    stepped = torch.bincount(torch.tensor([sample for rows in calls for sample in rows]), minlength=len(exits))
    assert stepped.tolist() == [step + 1 for step in exits]


def test_the_run_trace_steps_every_batch_until_its_last_exit():
    calls = render_slots.run_trace()
    exits = render_slots.stream_trace()[1].exit_step
    batches = exits.split(render_slots.SLOTS)
    assert len(calls) == sum(int(batch.max()) + 1 for batch in batches) == 71
    assert all(len(rows) == render_slots.SLOTS for rows in calls)


def test_the_committed_picture_is_what_the_script_draws():
    pytest.importorskip("matplotlib")
    assert render_slots.main(["--check"]) == 0, "run python docs/render_slots.py and commit docs/img"
