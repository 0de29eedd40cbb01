"""CI proves published numbers are current: ``python -m spikemax_bench.compare NEW COMMITTED`` fails
with a readable list of differences, and ignores exactly the provenance and the wall-clock timings."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from spikemax_bench import cli
from spikemax_bench.compare import differences, main

OPTIONS = ("--quick", "--dataset", "uci-iris", "--seeds", "2", "--frameworks", "snntorch,norse",
           "--losses", "spikemax_g,mse_count")  # fmt: skip


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """The same quick run twice, in two folders (different command lines, start times and timings)."""
    paths = []
    for name in ("first", "second"):
        out = tmp_path_factory.mktemp(name)
        assert cli.main([*OPTIONS, "--out", str(out)]) == 0
        paths.append(out / "results.json")
    return paths


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_a_rerun_reproduces_the_committed_numbers(two_runs, capsys):
    first, second = two_runs
    assert load(first)["provenance"]["command"] != load(second)["provenance"]["command"]
    assert main([str(second), str(first)]) == 0
    assert "reproduces" in capsys.readouterr().out


def test_every_changed_measure_is_named_with_old_and_new(two_runs, tmp_path, capsys):
    committed = load(two_runs[0])
    new = copy.deepcopy(committed)
    records = {(record["framework"], record["loss"]): record for record in new["records"]}
    records["norse", "mse_count"]["seeds"][1]["test"]["accuracy"] = 0.75
    records["snntorch", "spikemax_g"]["seeds"][0]["test"]["accuracy_over_time"][4] = 0.5
    records["snntorch", "spikemax_g"]["summary"]["network_spikes_per_sample"]["mean"] = 123.0
    new["verdicts"][0]["comparisons"][1]["outcome"] = "holds"
    new["config"]["epochs"] = 2
    path = tmp_path / "new.json"
    path.write_text(json.dumps(new))
    assert main([str(path), str(two_runs[0])]) == 1
    out = capsys.readouterr().out
    norse_seed_1 = records["norse", "mse_count"]["seeds"][1]
    old_accuracy = load(two_runs[0])["records"][3]["seeds"][1]["test"]["accuracy"]
    assert norse_seed_1["seed"] == 1
    assert f"  norse / mse_count / seed 1: test.accuracy: committed {old_accuracy!r}, new 0.75" in out
    assert "  snntorch / spikemax_g / seed 0: test.accuracy_over_time[4]: committed" in out
    assert "  snntorch / spikemax_g: summary.network_spikes_per_sample.mean: committed" in out
    assert "  claim accuracy / norse / spikemax_g: outcome: committed 'smoke run, no verdict', new 'holds'" in out
    assert "  config.epochs: committed 1, new 2 (+1)" in out
    assert "differs from" in out and "in 5 value(s)" in out


def test_early_exit_rules_and_measures_are_compared_and_named(two_runs):
    committed = load(two_runs[0])
    new = copy.deepcopy(committed)
    record = new["records"][0]
    headline = record["seeds"][1]["early_exit"]["rules"][2]
    old_threshold, old_fraction = headline["rule"]["thresholds"][5], headline["exit_fraction"]
    headline["rule"]["thresholds"][5] = 0.123
    headline["exit_fraction"] = 0.5
    record["summary"]["early_exit"][6]["coverage"]["mean"] = 0.25
    assert differences(new, committed) == [
        f"snntorch / spikemax_g / seed 1 / method accuracy / alpha 0.01: early_exit.rule.thresholds[5]: committed "
        f"{old_threshold!r}, new 0.123 ({0.123 - old_threshold:+.6g})",
        f"snntorch / spikemax_g / seed 1 / method accuracy / alpha 0.01: early_exit.exit_fraction: committed "
        f"{old_fraction!r}, new 0.5 ({0.5 - old_fraction:+.6g})",
        "snntorch / spikemax_g / method conformal / alpha 0.1: summary.coverage.mean: committed None, new 0.25",
    ]


def test_provenance_and_timings_are_ignored_and_nothing_else(two_runs):
    committed = load(two_runs[0])
    new = copy.deepcopy(committed)
    new["provenance"] = {"command": "something else", "wall_seconds": 1e9, "git": {"commit": "0" * 40}}
    new["config"]["data_dir"] = "/elsewhere"
    new["config"]["cache_dir"] = "/tmp/cache"
    for record in new["records"]:
        record["summary"]["seconds_per_epoch"] = {"mean": 99.0, "std": 1.0}
        for seed in record["seeds"]:
            seed["seconds_per_epoch"] = 42.0
            seed["curves"]["epoch_seconds"] = [42.0]
    assert differences(new, committed) == []
    new["config"]["threads"] = 2  # can change float rounding: compared
    new["dataset"]["sizes"]["test"] += 1
    assert differences(new, committed) == [
        "config.threads: committed 1, new 2 (+1)",
        f"dataset.sizes.test: committed {committed['dataset']['sizes']['test']}, "
        f"new {committed['dataset']['sizes']['test'] + 1} (+1)",
    ]


def test_a_missing_record_is_named(two_runs):
    committed = load(two_runs[0])
    new = copy.deepcopy(committed)
    new["records"] = [r for r in new["records"] if (r["framework"], r["loss"]) != ("norse", "mse_count")]
    found = differences(new, committed)
    assert found and all(line.startswith(("norse / mse_count", "claim ")) for line in found)
    missing = "norse / mse_count / seed 0: test.accuracy: committed"
    assert any(line.startswith(missing) and line.endswith("missing in the new run") for line in found)


def test_relative_tolerance_option(two_runs, tmp_path):
    committed = load(two_runs[0])
    new = copy.deepcopy(committed)
    accuracy = new["records"][0]["seeds"][0]["test"]
    accuracy["input_spikes_per_sample"] *= 1 + 1e-12
    path = tmp_path / "new.json"
    path.write_text(json.dumps(new))
    assert main([str(path), str(two_runs[0])]) == 1
    assert main([str(path), str(two_runs[0]), "--rtol", "1e-9"]) == 0


def test_unreadable_files_exit_2(tmp_path, two_runs, capsys):
    assert main([str(tmp_path / "missing.json"), str(two_runs[0])]) == 2
    assert "cannot read" in capsys.readouterr().err
    (tmp_path / "other.json").write_text('{"a": 1}')
    assert main([str(tmp_path / "other.json"), str(two_runs[0])]) == 2
    assert "is not a spikemax-bench results.json" in capsys.readouterr().err


def test_runs_as_a_module_with_exit_1(two_runs, tmp_path):
    new = load(two_runs[0])
    new["records"][0]["seeds"][0]["test"]["correct"] += 1
    path = tmp_path / "new.json"
    path.write_text(json.dumps(new))
    completed = subprocess.run(
        [sys.executable, "-m", "spikemax_bench.compare", str(path), str(two_runs[0])],
        capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"}, timeout=60,
    )  # fmt: skip
    assert completed.returncode == 1, completed.stderr
    assert "snntorch / spikemax_g / seed 0: test.correct" in completed.stdout


def _on_cpu(document: dict, cpu: str, path: Path) -> Path:
    document = copy.deepcopy(document)
    document["provenance"]["cpu"] = cpu
    path.write_text(json.dumps(document))
    return path


def test_the_committed_run_of_the_new_runs_cpu_is_the_reference(two_runs, tmp_path, capsys):
    """Float rounding differs by CPU model: with one committed run per CPU, the new run is held to its own."""
    run = load(two_runs[0])
    other = copy.deepcopy(run)
    other["records"][0]["seeds"][0]["test"]["correct"] += 3  # what the other CPU's rounding trained
    new = _on_cpu(run, "CPU B", tmp_path / "new.json")
    on_a = _on_cpu(other, "CPU A", tmp_path / "a.json")
    on_b = _on_cpu(run, "CPU B", tmp_path / "b.json")
    assert main([str(new), str(on_a), str(on_b)]) == 0
    out = capsys.readouterr().out
    assert "comparing with the one made on the same CPU" in out and f"reproduces {on_b}" in out
    # Held to the run of its CPU even where the first one would have matched: CPU A's run differs by 3.
    new_on_a = _on_cpu(run, "CPU A", tmp_path / "new_a.json")
    assert main([str(new_on_a), str(on_a), str(on_b)]) == 1
    out = capsys.readouterr().out
    assert f"differs from {on_a} in 1 value(s)" in out and "seed 0: test.correct" in out
    # A CPU with no committed run: compared with the first, and said so.
    new_on_c = _on_cpu(run, "CPU C", tmp_path / "new_c.json")
    assert main([str(new_on_c), str(on_a), str(on_b)]) == 1
    assert "none was made on this CPU: the first" in capsys.readouterr().out


def test_committed_runs_of_another_experiment_are_refused(two_runs, tmp_path, capsys):
    run = load(two_runs[0])
    other = copy.deepcopy(run)
    other["config"]["epochs"] += 1
    on_b = _on_cpu(other, "CPU B", tmp_path / "b.json")
    assert main([str(two_runs[1]), str(two_runs[0]), str(on_b)]) == 2
    assert f"{on_b} is not the experiment of {two_runs[0]} (their config differs)" in capsys.readouterr().err
