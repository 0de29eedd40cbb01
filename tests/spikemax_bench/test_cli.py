"""spikemax-bench end to end: quick runs on every kind of data set, the files and numbers they write,
reproducibility, the sweep, the models' match across frameworks, and the errors a user meets.

The results pipeline in detail (verdicts, output folder, resume, publishing, comparison, provenance, terminal)
is tested in test_stats.py, test_store.py, test_publish.py, test_compare.py, test_provenance.py and test_report.py."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from spikemax_bench import cells
from spikemax_bench.cli import main
from spikemax_bench.config import LOSS_NAMES, BenchConfig
from spikemax_bench.data import load_dataset
from spikemax_bench.measures import EARLY_EXIT_RULES
from spikemax_bench.models import build_network
from spikemax_bench.report.document import SCHEMA_VERSION
from spikemax_bench.run import run_benchmark
from spikemax_bench.summary import SUMMARY_METRICS
from spikemax_bench.sweep import choose_candidate, loss_candidates, sweep_grid

from .fixtures import write_dvsgesture_fixture, write_nmnist_fixture, write_ntidigits18_fixture, write_shd_fixture

PLOTS = ("accuracy_vs_time.png", "spikes_per_sample.png", "training_curves.png", "early_exit.png")
TIMING_KEYS = {"provenance", "epoch_seconds", "seconds_per_epoch"}
EVALUATION_KEYS = {
    "accuracy", "accuracy_over_time", "steps_to_decision", "time_to_decision_fraction", "no_decision_fraction",
    "output_spikes_per_sample", "hidden_spikes_per_sample", "network_spikes_per_sample",
    "hidden_synaptic_operations_per_sample", "input_spikes_per_sample", "input_synaptic_operations_per_sample",
    "synaptic_operations_per_sample", "correct", "samples",
}  # fmt: skip


def run_quick(out: Path, *options: str) -> dict:
    """``spikemax-bench --quick`` in-process; returns the parsed results.json."""
    threads = torch.get_num_threads()
    assert main(["--quick", "--out", str(out), *options]) == 0
    assert torch.get_num_threads() == threads  # main() restores what it changed
    return json.loads((out / "results.json").read_text())


def without_timings(value):
    if isinstance(value, dict):
        return {key: without_timings(item) for key, item in value.items() if key not in TIMING_KEYS}
    if isinstance(value, list):
        return [without_timings(item) for item in value]
    return value


def assert_sane(document: dict, *, frameworks: tuple[str, ...], losses: tuple[str, ...]) -> None:
    """Schema keys present and every number in its range."""
    assert document["schema_version"] == SCHEMA_VERSION
    assert {"provenance", "config", "dataset", "candidates", "records", "verdicts"} <= set(document)
    dataset = document["dataset"]
    time_steps = dataset["time_steps"]
    assert [(record["framework"], record["loss"]) for record in document["records"]] == [
        (framework, loss) for framework in frameworks for loss in losses
    ]
    for record in document["records"]:
        assert record["hyper_parameters"] == loss_candidates(record["loss"], time_steps)[0]  # quick: no sweep
        assert record["sweep"] is None
        assert set(SUMMARY_METRICS) | {"accuracy_over_time"} <= set(record["summary"])
        for seed_record in record["seeds"]:
            test = seed_record["test"]
            assert set(test) == EVALUATION_KEYS
            assert test["samples"] == dataset["sizes"]["test"]
            assert 0.0 <= test["accuracy"] <= 1.0
            assert len(test["accuracy_over_time"]) == time_steps
            assert all(0.0 <= value <= 1.0 for value in test["accuracy_over_time"])
            assert test["accuracy_over_time"][-1] == pytest.approx(test["accuracy"])
            assert 0.0 <= test["no_decision_fraction"] <= 1.0
            assert test["correct"] == round(test["accuracy"] * test["samples"])
            if test["no_decision_fraction"] < 1.0:
                assert 1.0 <= test["steps_to_decision"] <= time_steps  # steps seen: 1..T
                assert test["time_to_decision_fraction"] == pytest.approx(test["steps_to_decision"] / time_steps)
            else:
                assert test["steps_to_decision"] is None
            assert 0.0 <= test["output_spikes_per_sample"] <= test["network_spikes_per_sample"]
            assert test["input_spikes_per_sample"] > 0.0  # every data set feeds some spikes
            assert test["synaptic_operations_per_sample"] >= test["input_spikes_per_sample"]
            assert_sane_early_exit(seed_record, dataset)
            curves = seed_record["curves"]
            epochs = document["config"]["epochs"]
            assert len(curves["train_loss"]) == len(curves["validation_accuracy"]) == epochs
            assert all(math.isfinite(loss) and loss >= 0 for loss in curves["train_loss"])
            assert seed_record["final_train_loss"] == curves["train_loss"][-1]


def assert_sane_early_exit(seed_record: dict, dataset: dict) -> None:
    """Every rule calibrated on the validation split (or refused for its size) and its measures in range."""
    time_steps, validation = dataset["time_steps"], dataset["sizes"]["validation"]
    early_exit = seed_record["early_exit"]
    assert early_exit["calibration"] == {"split": "validation", "samples": validation}
    assert [(entry["method"], entry["alpha"]) for entry in early_exit["rules"]] == list(EARLY_EXIT_RULES)
    test = seed_record["test"]
    for entry in early_exit["rules"]:
        if entry["rule"] is None:  # only the conformal rule, on validation splits under 39 samples
            assert entry["method"] == "conformal" and validation < 39 and "n >= 39" in entry["error"]
            continue
        assert entry["rule"]["calibration_size"] == validation and entry["rule"]["num_steps"] == time_steps
        assert 0.0 <= entry["accuracy"] <= 1.0 and 0.0 <= entry["coverage"] <= 1.0
        assert 0.0 <= entry["mean_exit_step"] <= time_steps - 1
        assert entry["exit_fraction"] == pytest.approx((entry["mean_exit_step"] + 1) / time_steps)
        # Nothing is spent after the exit: at most the full window's operations and spikes.
        for name in ("hidden_synaptic_operations", "synaptic_operations", "network_spikes"):
            assert entry[f"{name}_per_sample"] <= test[f"{name}_per_sample"] * (1 + 1e-12)
            share = entry[f"{name}_share"]
            assert share is None or 0.0 <= share <= 1.0


# --------------------------------------------------------------------------------- the default data set


@pytest.fixture(scope="module")
def digits_dvs_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits-dvs")
    return out, run_quick(out, "--cache-dir", str(out / "cache"))


def test_quick_default_run_writes_every_file_with_sane_numbers(digits_dvs_run):
    out, document = digits_dvs_run
    assert document["dataset"]["name"] == "digits-dvs"
    assert document["dataset"]["kind"] == "events"
    assert document["dataset"]["input_shape"] == [2, 22, 22]
    assert document["config"]["epochs"] == 1 and document["config"]["sweep"] is False and document["config"]["quick"]
    assert_sane(document, frameworks=("snntorch", "norse"), losses=LOSS_NAMES)
    for plot in PLOTS:
        assert (out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with (out / "results.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert [(row["framework"], row["loss"]) for row in rows] == [
        (record["framework"], record["loss"]) for record in document["records"]
    ]
    for row, record in zip(rows, document["records"], strict=True):
        assert float(row["accuracy_mean"]) == pytest.approx(record["summary"]["accuracy"]["mean"])
        assert float(row["accuracy_std"]) == 0.0  # one seed
    markdown = (out / "results.md").read_text()
    assert "| snntorch | spikemax_g |" in markdown and "| norse | mse_count |" in markdown
    assert markdown.startswith("# spikemax-bench smoke run: digits-dvs")
    assert "**SMOKE RUN (--quick), not a result: digits-dvs, test split (32 samples), T = 30, 1 seed**" in markdown
    assert "No verdict on the paper's claims." in markdown


def test_activity_splits_into_what_the_loss_changes_and_the_input(digits_dvs_run):
    _, document = digits_dvs_run
    hidden_size, num_classes = document["config"]["hidden_size"], document["dataset"]["num_classes"]
    input_spikes = set()
    for record in document["records"]:
        test = record["seeds"][0]["test"]
        # MLP: each input event drives hidden_size synapses, each hidden spike num_classes synapses.
        assert test["input_synaptic_operations_per_sample"] == pytest.approx(
            test["input_spikes_per_sample"] * hidden_size, rel=1e-6
        )
        assert test["hidden_synaptic_operations_per_sample"] == pytest.approx(
            test["hidden_spikes_per_sample"] * num_classes, rel=1e-6
        )
        assert test["synaptic_operations_per_sample"] == pytest.approx(
            test["input_synaptic_operations_per_sample"] + test["hidden_synaptic_operations_per_sample"], rel=1e-6
        )
        assert test["network_spikes_per_sample"] == pytest.approx(
            test["hidden_spikes_per_sample"] + test["output_spikes_per_sample"], rel=1e-6
        )
        input_spikes.add(test["input_spikes_per_sample"])
    assert len(input_spikes) == 1  # every loss sees the same test inputs


def test_a_quick_run_gives_no_verdict_on_any_claim(digits_dvs_run):
    _, document = digits_dvs_run
    assert [verdict["claim"] for verdict in document["verdicts"]] == ["accuracy", "earlier decisions", "fewer spikes"]
    for verdict in document["verdicts"]:
        assert len(verdict["comparisons"]) == 4  # 2 frameworks x (spikemax_g, spikemax_s)
        assert verdict["overall"] == "smoke run, no verdict"
        assert {comparison["outcome"] for comparison in verdict["comparisons"]} == {"smoke run, no verdict"}


def test_the_same_seed_gives_the_same_numbers(digits_dvs_run, tmp_path):
    out, first = digits_dvs_run
    second = run_quick(tmp_path, "--cache-dir", str(out / "cache"))
    first_numbers, second_numbers = without_timings(first), without_timings(second)
    assert first_numbers == second_numbers


# ----------------------------------------------------------------------------- other kinds of data sets


@pytest.mark.parametrize(
    ("dataset", "writer", "input_shape", "options"),
    [
        ("digits-rate", None, [64], ("--frameworks", "norse", "--losses", "spikemax_s,mse_count")),
        ("uci-wine", None, [13], ("--frameworks", "snntorch", "--losses", "ce_count,mse_count")),
        ("nmnist", write_nmnist_fixture, [2, 34, 34],
         ("--frameworks", "snntorch", "--losses", "spikemax_g,mse_count")),
        ("dvsgesture", write_dvsgesture_fixture, [2, 32, 32],
         ("--frameworks", "norse", "--losses", "spikemax_g,ce_count")),
        ("ntidigits18", write_ntidigits18_fixture, [64], ("--frameworks", "snntorch", "--losses", "spikemax_s")),
        ("shd", write_shd_fixture, [700], ("--frameworks", "norse", "--losses", "mse_count,spikemax_g")),
    ],
)  # fmt: skip
def test_quick_run_on_each_kind_of_data_set(dataset, writer, input_shape, options, tmp_path):
    data_options = ("--data-dir", str(writer(tmp_path / "data"))) if writer else ()
    document = run_quick(tmp_path / "out", "--dataset", dataset, "--time-steps", "6", *data_options, *options)
    assert document["dataset"]["name"] == dataset
    assert document["dataset"]["time_steps"] == 6
    assert document["dataset"]["input_shape"] == input_shape
    losses = tuple(options[3].split(","))
    assert_sane(document, frameworks=(options[1],), losses=losses)
    if "mse_count" not in losses or not {"spikemax_g", "spikemax_s"} & set(losses):
        assert document["verdicts"] == []
        assert "No verdict on the paper's claims." in (tmp_path / "out" / "results.md").read_text()


def test_seeds_give_mean_and_sample_std(tmp_path):
    document = run_quick(tmp_path, "--dataset", "uci-iris", "--seeds", "3", "--frameworks", "snntorch",
                         "--losses", "spikemax_g,mse_count")  # fmt: skip
    for record in document["records"]:
        assert [seed_record["seed"] for seed_record in record["seeds"]] == [0, 1, 2]
        accuracies = torch.tensor([seed_record["test"]["accuracy"] for seed_record in record["seeds"]])
        assert record["summary"]["accuracy"]["mean"] == pytest.approx(accuracies.mean().item())
        assert record["summary"]["accuracy"]["std"] == pytest.approx(accuracies.std().item())
        curves = torch.tensor([seed_record["test"]["accuracy_over_time"] for seed_record in record["seeds"]])
        assert record["summary"]["accuracy_over_time"]["mean"] == pytest.approx(curves.mean(0).tolist())


# -------------------------------------------------------------------------------------------- the sweep


def test_sweep_pools_validation_accuracy_over_seeds_and_never_scores_test(monkeypatch):
    datasets = {seed: load_dataset("uci-iris", quick=True, time_steps=8, seed=seed) for seed in (0, 1)}
    assert datasets[0].validation.source_indices.tolist() != datasets[1].validation.source_indices.tolist()
    evaluated = []
    original = cells.evaluate_trained

    def counting_evaluate_trained(network, dataset, **options):
        evaluated.append(dataset)
        return original(network, dataset, **options)

    monkeypatch.setattr(cells, "evaluate_trained", counting_evaluate_trained)
    config = BenchConfig(
        dataset="uci-iris", frameworks=("snntorch",), losses=("spikemax_s", "mse_count"), epochs=2, sweep_seeds=2
    )
    records = run_benchmark(config, datasets.__getitem__)
    assert len(evaluated) == 2  # the test split is measured once per loss and test seed, never for the sweep
    assert config.sweep_seeds == 2 and BenchConfig(seeds=1).sweep_seeds == 1 and BenchConfig(seeds=5).sweep_seeds == 2
    for record in records:
        candidates = record["sweep"]["candidates"]
        # Three hyper-parameter values at each of the default learning rates, 2e-3 first.
        assert [entry["hyper_parameters"] for entry in candidates] == loss_candidates(record["loss"], 8) * 2
        assert [entry["learning_rate"] for entry in candidates] == [2e-3] * 3 + [1e-2] * 3
        assert record["sweep"]["seeds"] == [0, 1]
        sizes = [len(datasets[seed].validation) for seed in (0, 1)]
        pooled = []
        for entry in candidates:
            correct = [round(seed["validation_accuracy"] * n) for seed, n in zip(entry["per_seed"], sizes, strict=True)]
            assert entry["validation_accuracy"] == pytest.approx(sum(correct) / sum(sizes))
            pooled.append(sum(correct))
        # The earliest candidate within 1 percentage point (in correct answers) of the best is chosen.
        best = max(pooled)
        expected = next(index for index, hits in enumerate(pooled) if (best - hits) <= 0.01 * sum(sizes))
        assert record["candidate"] == expected
        assert [entry["chosen"] for entry in candidates] == [index == expected for index in range(6)]
        assert record["hyper_parameters"] == candidates[expected]["hyper_parameters"]
        assert record["learning_rate"] == candidates[expected]["learning_rate"]
        # Test seed 0 reuses the chosen sweep network of seed 0: the same curves.
        chosen_seed_0 = candidates[expected]["per_seed"][0]
        assert record["seeds"][0]["curves"]["validation_accuracy"] == chosen_seed_0["curves"]["validation_accuracy"]


def test_what_evaluate_trained_returns_is_stored_per_seed(monkeypatch):
    # The seam for later measures of a trained network: each key it returns lands in the seed's record.
    original = cells.evaluate_trained

    def with_more(network, dataset, **options):
        return {**original(network, dataset, **options), "more": {"validation_samples": len(dataset.validation)}}

    monkeypatch.setattr(cells, "evaluate_trained", with_more)
    dataset = load_dataset("uci-iris", quick=True, time_steps=4)
    config = BenchConfig(dataset="uci-iris", frameworks=("norse",), losses=("ce_count",), epochs=1, sweep=False)
    (record,) = run_benchmark(config, lambda seed: dataset)
    assert record["seeds"][0]["more"] == {"validation_samples": len(dataset.validation)}
    assert record["seeds"][0]["test"]["samples"] == len(dataset.test)
    assert len(record["seeds"][0]["early_exit"]["rules"]) == len(EARLY_EXIT_RULES)
    assert [entry["alpha"] for entry in record["summary"]["early_exit"]] == [alpha for _, alpha in EARLY_EXIT_RULES]


def test_choice_keeps_the_earliest_candidate_within_the_margin():
    # 287 validation samples per seed, two seeds: one percentage point is 5.74 correct answers.
    assert choose_candidate([540, 542, 536], [574, 574, 574]) == 0  # 2 answers behind the best: a tie
    assert choose_candidate([530, 542, 536], [574, 574, 574]) == 1  # 12 behind: the best wins
    assert choose_candidate([536, 530, 542], [574, 574, 574]) == 2  # 6 behind, more than 5.74: the best wins
    # Exactly at the margin counts as within it; in floats 1.00 - 0.99 is 0.010000000000000009 > 0.01.
    assert choose_candidate([99, 100], [100, 100]) == 0
    assert choose_candidate([98, 100], [100, 100]) == 1


def test_every_loss_gets_the_same_budget_and_the_default_first():
    for loss in LOSS_NAMES:
        candidates = loss_candidates(loss, 30)
        assert len({json.dumps(candidate, sort_keys=True) for candidate in candidates}) == 3
        grid = sweep_grid(loss, 30, (2e-3, 5e-3))
        assert len(grid) == 6
        # Learning-rate-major: every hyper-parameter candidate at the default learning rate comes first.
        assert [candidate.learning_rate for candidate in grid] == [2e-3] * 3 + [5e-3] * 3
        assert [candidate.hyper_parameters for candidate in grid] == candidates * 2
        assert sweep_grid(loss, 30, (2e-3, 5e-3), sweep=False) == grid[:1]
    assert [candidate["window"] for candidate in loss_candidates("spikemax_s", 30)] == [15, 8, 22]


# ------------------------------------------------------------------------------------------- the models


@pytest.mark.parametrize(("architecture", "input_shape"), [("mlp", (13,)), ("conv", (2, 22, 22))])
def test_snntorch_and_norse_networks_spike_alike_from_the_same_seed(architecture, input_shape):
    networks = [
        build_network(framework, architecture=architecture, input_shape=input_shape, num_classes=3, seed=5)
        for framework in ("snntorch", "norse")
    ]
    frames = (torch.rand(25, 8, *input_shape, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    snntorch_spikes, norse_spikes = (network(frames) for network in networks)
    assert len(snntorch_spikes.layers) == len(networks[0].fan_out) == (2 if architecture == "mlp" else 3)
    hidden_spikes = snntorch_spikes.layers[0]
    assert 0 < hidden_spikes.sum() < hidden_spikes.numel()  # some spikes, not all: the comparison means something
    for ours, theirs in zip(snntorch_spikes.layers, norse_spikes.layers, strict=True):
        assert ours.shape == theirs.shape
        # Float rounding differs (beta * v + I against v + (1 - beta) * (I / (1 - beta) - v)): allow a rare flip.
        assert (ours != theirs).float().mean() < 0.01


def test_conv_fan_out_counts_border_synapses_exactly():
    network = build_network("snntorch", architecture="conv", input_shape=(2, 22, 22), num_classes=10)
    input_fan_out = network.fan_out[0]  # Conv2d(2, 16, 5, stride 2, padding 2)
    assert input_fan_out.shape == (2, 22, 22)
    # An interior input pixel feeds 3 x 3 output positions (kernel 5, stride 2) of 16 channels; a corner 2 x 2.
    assert input_fan_out[0, 10, 10] == 16 * 3 * 3
    assert input_fan_out[1, 0, 0] == 16 * 2 * 2
    assert network.layer_sizes == [16 * 11 * 11, 32 * 6 * 6, 10]


# ------------------------------------------------------------------------------------------- the errors


def test_missing_data_exits_2_with_the_loader_message(tmp_path, capsys):
    assert main(["--dataset", "nmnist", "--data-dir", str(tmp_path / "empty"), "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert str(tmp_path / "empty" / "NMNIST") in error
    assert "--download" in error and "--data-dir" in error
    assert "Traceback" not in error
    assert not (tmp_path / "results.json").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised when no CUDA device exists")
def test_cuda_without_a_device_exits_2_with_a_clear_message(tmp_path, capsys):
    assert main(["--quick", "--device", "cuda", "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "--device cuda" in error and "no CUDA device" in error and "--device cpu" in error


@pytest.mark.cuda
def test_quick_run_on_cuda(tmp_path):
    document = run_quick(tmp_path, "--device", "cuda", "--dataset", "uci-iris")
    assert document["config"]["device"] == "cuda" and document["provenance"]["gpu"]  # results.json has no "environment"
    assert_sane(document, frameworks=("snntorch", "norse"), losses=LOSS_NAMES)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--losses", "spikemax_g,hinge"], "spikemax_g, spikemax_s, ce_count, mse_count"),
        (["--dataset", "mnist-color"], "invalid choice: 'mnist-color'"),
        (["--epochs", "0"], "expected an integer >= 1, got 0"),
        (["--framework", "brian2"], "--frameworks expects a comma-separated list of snntorch, norse; got 'brian2'"),
        (["--learning-rates", "2e-3,-1"], "--learning-rates expects a comma-separated list of distinct numbers > 0"),
        (["--learning-rate", "abc"], "got 'abc'"),
        (["--sweep-seeds", "0"], "expected an integer >= 1, got 0"),
    ],
)
def test_bad_arguments_exit_2_naming_what_is_expected(arguments, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(arguments)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_conv_on_a_channel_data_set_exits_2(tmp_path, capsys):
    assert main(["--quick", "--dataset", "uci-iris", "--architecture", "conv", "--out", str(tmp_path)]) == 2
    assert "--architecture conv needs an event data set" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ as a user runs it


def run_module(*arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    return subprocess.run(
        [sys.executable, "-m", "spikemax_bench", *arguments],
        capture_output=True, text=True, cwd=cwd, env=environment, timeout=120,
    )  # fmt: skip


def test_help_lists_every_option(tmp_path):
    completed = run_module("--help", cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    options = ("--dataset", "--frameworks", "--framework", "--losses", "--loss", "--epochs", "--time-steps",
               "--seeds", "--sweep-seeds", "--learning-rates", "--device", "--out", "--overwrite", "--resume",
               "--data-dir", "--download", "--quick", "--batch-size", "--no-sweep", "--threads")  # fmt: skip
    for option in options:
        assert option in completed.stdout
    assert "digits-dvs" in completed.stdout and "ntidigits18" in completed.stdout


def test_quick_run_as_a_subprocess_prints_the_tables_and_says_smoke_run(tmp_path):
    completed = run_module("--quick", "--dataset", "uci-iris", "--out", "results", cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert "SMOKE RUN (--quick), not a result: uci-iris, test split (30 samples)" in completed.stdout
    assert "| mse_count" not in completed.stdout and "│ mse_count" in completed.stdout  # rich's table
    assert "SMOKE RUN (--quick): no verdict on the paper's claims." in completed.stdout
    assert (tmp_path / "results" / "results.json").is_file()  # --out is relative to the working folder
