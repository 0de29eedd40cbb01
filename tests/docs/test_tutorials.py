"""The tutorial scripts under docs/tutorials/code run and learn: the pages show exactly this code."""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path

import pytest

CODE = Path(__file__).resolve().parents[2] / "docs" / "tutorials" / "code"

pytestmark = pytest.mark.slow


@pytest.fixture
def tutorial(monkeypatch):
    """Imports a tutorial module from docs/tutorials/code the way ``python <file>`` would find its neighbours."""
    monkeypatch.syspath_prepend(str(CODE))
    loaded = []

    def load(name: str):
        loaded.append(name)
        return importlib.import_module(name)

    yield load
    for name in [*loaded, "synthetic_data", "snntorch_spikemax"]:
        sys.modules.pop(name, None)


def test_snntorch_tutorial_learns(tutorial):
    pytest.importorskip("snntorch")
    results = tutorial("snntorch_spikemax").main()
    assert results["test_accuracy"] >= results["chance"] + 0.5, results
    assert results["final_loss"] < math.log(4) / 2, results  # log C is the loss of a silent network


def test_norse_tutorial_learns(tutorial):
    pytest.importorskip("norse")
    results = tutorial("norse_spikemax").main()
    assert results["test_accuracy"] >= results["chance"] + 0.5, results
    assert results["final_loss"] < math.log(4) / 2, results
    assert results["output_spikes_per_sample"] > 0, results


def test_spikingjelly_tutorial_learns_and_exits_early(tutorial):
    pytest.importorskip("spikingjelly.activation_based")
    results = tutorial("spikingjelly_spikemax").main()
    assert results["test_accuracy"] >= results["chance"] + 0.5, results
    assert results["final_loss"] < math.log(4) / 2, results
    assert results["early_exit_accuracy"] >= results["test_accuracy"] - 0.05, results
    assert results["exit_fraction"] < 0.9 and results["step_mode_after"] == "m", results


def test_sinabs_tutorial_learns_and_exits_early(tutorial):
    pytest.importorskip("sinabs")
    results = tutorial("sinabs_spikemax").main()
    assert results["test_accuracy"] >= results["chance"] + 0.5, results
    assert results["final_loss"] < math.log(4) / 2, results
    assert results["early_exit_accuracy"] >= results["test_accuracy"] - 0.05, results
    assert results["exit_fraction"] < 0.9, results


def test_neurobench_tutorial_reports_early_exit_through_neurobench(tutorial):
    pytest.importorskip("neurobench")
    results = tutorial("neurobench_spikemax").main()
    assert results["test_accuracy"] >= results["chance"] + 0.5, results
    assert results["final_loss"] < math.log(4) / 2, results
    over_time = results["accuracy_over_time"]
    assert len(over_time) == 25 and over_time[-1] == results["test_accuracy"], results
    assert 0 < results["time_to_decision_fraction"] < 1, results
    assert results["early_exit_accuracy"] >= results["test_accuracy"] - 0.05, results
    assert results["exit_fraction"] < 0.9, results
    # NeuroBench's own hooks see only the steps simulated before each exit.
    assert 0 < results["early_exit_operations"] < results["full_window_operations"] * 0.9, results
    assert 0 < results["early_exit_sparsity"] < 1 and 0 < results["full_window_sparsity"] < 1, results


def test_latency_tutorial_reads_consistent_latencies(tutorial):
    pytest.importorskip("snntorch")
    results = tutorial("decision_latency").main()
    chance = results.pop("chance")
    assert set(results) == {"spikemax_g", "spikemax_s window 5"}
    for name, result in results.items():
        over_time = result["accuracy_over_time"]
        assert len(over_time) == 25, name
        # accuracy_over_time at the last step is the accuracy of the whole window
        assert over_time[-1] == pytest.approx(result["final_accuracy"]), name
        assert result["final_accuracy"] >= chance + 0.5, (name, result["final_accuracy"])
        assert all(-1 <= step <= 24 for step in result["time_to_decision"]), name
        assert result["median_time_to_decision"] is not None and result["median_time_to_decision"] < 24, name


def test_early_exit_tutorial_saves_steps_within_its_tolerance(tutorial):
    pytest.importorskip("snntorch")
    results = tutorial("early_exit_snntorch").main()
    full = results["full_accuracy"]
    assert full > 0.9, results
    for alpha, (accuracy, fraction) in results["trade_off"].items():
        # 400 held-out samples: the binomial noise of an accuracy near 0.95 is ~0.011; allow 3 of it beyond alpha.
        assert accuracy >= full - alpha - 0.035, (alpha, results)
        assert fraction < 1.0, (alpha, results)
    assert results["trade_off"][0.05][1] <= results["trade_off"][0.0][1]  # more tolerance, earlier exits
    assert results["conformal_coverage"] >= 0.9 - 0.045, results  # 1 - alpha minus ~3 binomial sd at n = 400
    assert results["online_steps"] == results["online_exit_step"] + 1 <= 25, results
