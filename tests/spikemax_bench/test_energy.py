"""The compute a decision costs and the activity-penalty sweep: the engine's counts against an independent
schedule, the per-decision measures against the library's metrics on the whole recording, the matched-accuracy
energy claim on records with known numbers, the regulariser in training, and the command line end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from spikemax_bench import cells
from spikemax_bench.arguments import build_parser
from spikemax_bench.cli import main
from spikemax_bench.config import BenchConfig
from spikemax_bench.data import silent_progress
from spikemax_bench.evaluate import evaluate_trained, per_decision
from spikemax_bench.loaders import make_loader
from spikemax_bench.measures import PER_DECISION_MEASURES, Evaluation
from spikemax_bench.render import render_block
from spikemax_bench.render.energy import NOT_MEASURED
from spikemax_bench.train import train_network
from spikemax_bench.verdicts import CONTRADICTED, HOLDS, energy_verdicts
from spikemax_plugins import early_exit, metrics

from ..stream_support import continuous_batching_schedule
from .synthetic import SIZES, TIME_STEPS, spiking_network, synthetic_dataset

CPU = torch.device("cpu")
REPOSITORY = Path(__file__).resolve().parents[2]


@torch.no_grad()
def whole(network, split):
    frames, labels = next(iter(make_loader(split, len(split), shuffle=False, seed=0)))
    return network(frames), labels


@pytest.mark.parametrize("batch_size", [5, 16, 64])
def test_per_decision_counts_are_the_engine_schedule_and_the_metrics_up_to_each_exit(batch_size):
    dataset = synthetic_dataset()
    network = spiking_network()
    record = evaluate_trained(network, dataset, batch_size=batch_size, device=CPU)
    validation, validation_labels = whole(network, dataset.validation)
    test, labels = whole(network, dataset.test)
    rule = early_exit.calibrate(validation.output, validation_labels, method="accuracy", alpha=0.01)
    exits = early_exit.evaluate(rule, test.output, labels).exit_step
    samples = SIZES["test"]  # 53
    assert 0 < exits.min() and exits.max() < TIME_STEPS - 1 or exits.unique().numel() > 2  # exits are spread out
    fan_out = network.fan_out
    full_operations = metrics.synaptic_operations(test.presynaptic, fan_out).sum().item()
    early_operations = metrics.synaptic_operations(test.presynaptic, fan_out, until=exits).sum().item()
    used = (torch.arange(TIME_STEPS).view(-1, 1) <= exits.view(1, -1)).float()
    early_spikes = sum((layer.sum(-1) * used).sum().item() for layer in test.layers)
    full_spikes = sum(layer.sum().item() for layer in test.layers)
    expected = {
        "network_calls_per_decision": {
            "full_window": -(-samples // batch_size) * TIME_STEPS / samples,
            "early_exit": len(continuous_batching_schedule(exits.tolist(), batch_size)) / samples,
        },
        "sample_steps_per_decision": {"full_window": TIME_STEPS, "early_exit": (exits + 1).sum().item() / samples},
        "synaptic_operations_per_decision": {
            "full_window": full_operations / samples,
            "early_exit": early_operations / samples,
        },
        "spikes_per_decision": {"full_window": full_spikes / samples, "early_exit": early_spikes / samples},
    }
    measured = record["per_decision"]
    assert measured["rule"] == {"method": "accuracy", "alpha": 0.01} and measured["slots"] == batch_size
    for name in PER_DECISION_MEASURES:
        for window in ("full_window", "early_exit"):
            assert measured[name][window] == pytest.approx(expected[name][window], rel=1e-12), (name, window)
    # Early exit saves: fewer calls than the full window once the split spans several batches.
    if batch_size < samples:
        assert measured["network_calls_per_decision"]["early_exit"] < measured["network_calls_per_decision"][
            "full_window"
        ]


def evaluation(samples: int = 10) -> Evaluation:
    return Evaluation(
        accuracy=0.5, accuracy_over_time=[0.5], steps_to_decision=2.0, time_to_decision_fraction=0.5,
        no_decision_fraction=0.0, output_spikes_per_sample=1.0, hidden_spikes_per_sample=2.0,
        network_spikes_per_sample=3.0, hidden_synaptic_operations_per_sample=4.0, input_spikes_per_sample=5.0,
        input_synaptic_operations_per_sample=6.0, synaptic_operations_per_sample=10.0, correct=5, samples=samples,
    )  # fmt: skip


def test_an_engine_that_decides_otherwise_than_evaluate_is_an_error():
    headline = {"rule": {}, "exit_fraction": 0.5, "accuracy": 0.5, "synaptic_operations_per_sample": 5.0,
                "network_spikes_per_sample": 1.5}  # fmt: skip
    agreeing = {"network_calls": 7, "sample_steps": 20, "correct": 5, "samples": 10}  # 10 samples x T=4 x 0.5
    record = per_decision(evaluation(), headline, agreeing, num_steps=4, batch_size=4)
    assert record["network_calls_per_decision"] == {"full_window": 3 * 4 / 10, "early_exit": 0.7}
    assert record["sample_steps_per_decision"] == {"full_window": 4.0, "early_exit": 2.0}
    assert record["synaptic_operations_per_decision"] == {"full_window": 10.0, "early_exit": 5.0}
    for wrong in ({"sample_steps": 21}, {"correct": 4}, {"samples": 9}):
        with pytest.raises(RuntimeError, match="the early-exit engine decided otherwise than early_exit.evaluate"):
            per_decision(evaluation(), headline, {**agreeing, **wrong}, num_steps=4, batch_size=4)
    # No headline rule: the early-exit values are None, the full window is still there.
    record = per_decision(evaluation(), None, None, num_steps=4, batch_size=4)
    assert record["spikes_per_decision"] == {"full_window": 3.0, "early_exit": None}


def record(framework, loss, penalty, accuracy, operations):
    """A framework x loss x λ record with the given mean accuracy and per-seed early-exit operations."""
    return {
        "framework": framework, "loss": loss, "activity_penalty": penalty,
        "summary": {"accuracy": {"mean": accuracy, "std": 0.0}},
        "seeds": [
            {"seed": seed, "per_decision": {"synaptic_operations_per_decision": {"early_exit": value}}}
            for seed, value in enumerate(operations)
        ],
    }  # fmt: skip


def test_the_energy_claim_matches_each_loss_at_the_cheapest_penalty_within_one_point():
    records = [
        record("snntorch", "mse_count", 0.0, 0.900, [900, 950, 1000]),
        record("snntorch", "mse_count", 1.0, 0.895, [800, 850, 900]),  # within 1 point of 0.900 and cheaper
        record("snntorch", "mse_count", 10.0, 0.700, [100, 120, 140]),  # cheapest but too inaccurate
        record("snntorch", "spikemax_g", 0.0, 0.920, [500, 520, 540]),
        record("snntorch", "spikemax_g", 1.0, 0.891, [300, 310, 320]),  # 0.891 >= 0.890: matched here
        record("snntorch", "spikemax_g", 10.0, 0.889, [100, 110, 120]),  # 0.889 < 0.890
        record("snntorch", "ce_count", 0.0, 0.850, [200, 200, 200]),  # never reaches: its most accurate λ
        record("snntorch", "ce_count", 1.0, 0.800, [100, 100, 100]),
    ]
    (verdict,) = energy_verdicts(records)
    matches = {match["loss"]: match for match in verdict["matches"]}
    assert (matches["mse_count"]["activity_penalty"], matches["mse_count"]["matched"]) == (1.0, True)
    assert (matches["spikemax_g"]["activity_penalty"], matches["spikemax_g"]["matched"]) == (1.0, True)
    assert (matches["ce_count"]["activity_penalty"], matches["ce_count"]["matched"]) == (0.0, False)
    assert matches["spikemax_g"]["synaptic_operations_per_decision"] == 310
    against_mse, against_ce = verdict["comparisons"]
    assert (against_mse["baseline"], against_mse["baseline_activity_penalty"]) == ("mse_count", 1.0)
    assert against_mse["difference"] == pytest.approx(-540.0)  # 310 - 850, every seed -540
    assert against_mse["outcome"] == HOLDS
    assert against_ce["baseline"] == "ce_count" and against_ce["difference"] == pytest.approx(110.0)
    assert against_ce["outcome"] == CONTRADICTED  # 300, 310, 320 vs 200 on every seed
    assert verdict["overall"] == f"mixed: 1 {HOLDS}, 1 {CONTRADICTED}"
    # Runs without per-decision measures (recorded before them) give no energy verdict at all.
    old = [{**item, "seeds": [{"seed": 0}]} for item in records]
    assert energy_verdicts(old) == []


def test_the_activity_penalty_alone_lowers_the_firing_rates():
    dataset = synthetic_dataset()

    def hidden_rate(network) -> float:
        spikes, _ = whole(network, dataset.train)
        return spikes.layers[0].mean().item()

    def trained(penalty: float):
        network = spiking_network()
        loader = make_loader(dataset.train, 10, shuffle=True, seed=0)
        validation = make_loader(dataset.validation, 40, shuffle=False, seed=0)
        with silent_progress("training", 10) as task:
            train_network(network, lambda output, labels: output.sum() * 0.0, loader, validation, epochs=3,
                          learning_rate=1e-2, device=CPU, task=task, activity_penalty=penalty)  # fmt: skip
        return network

    before = hidden_rate(spiking_network())
    assert before > 0.05
    assert hidden_rate(trained(0.0)) == before  # a zero loss and no penalty: nothing changes
    assert hidden_rate(trained(1.0)) < 0.75 * before  # 0.148 -> 0.097 at λ = 1


def test_activity_penalty_option_parses_a_list_and_refuses_bad_weights(capsys):
    parser = build_parser()
    assert parser.parse_args([]).activity_penalties == (0.0,)
    assert parser.parse_args(["--activity-penalty", "0, 0.5,10"]).activity_penalties == (0.0, 0.5, 10.0)
    for bad in ("x", "-1", "1,1", "inf", ""):
        with pytest.raises(SystemExit):
            parser.parse_args(["--activity-penalty", bad])
        assert "--activity-penalty expects a comma-separated list of distinct numbers >= 0" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"activity_penalties must be a non-empty tuple of distinct finite floats"):
        BenchConfig(activity_penalties=(0.0, -1.0))


def test_cells_without_a_penalty_keep_their_names_and_each_penalty_has_its_own():
    assert cells.training_key("norse", "mse_count", 2, 1) == "train.norse.mse_count.c2.s1"
    assert cells.training_key("norse", "mse_count", 2, 1, 0.0) == "train.norse.mse_count.c2.s1"
    assert cells.training_key("norse", "mse_count", 2, 1, 0.5) == "train.norse.mse_count.c2.s1.p0.5"
    assert cells.evaluation_key("norse", "mse_count", 1, 10.0) == "evaluate.norse.mse_count.s1.p10.0"


def test_a_penalty_sweep_runs_end_to_end_and_renders(tmp_path):
    out = tmp_path / "run"
    options = ["--frameworks", "snntorch", "--losses", "spikemax_g,mse_count", "--activity-penalty", "0,2"]
    assert main(["--quick", "--out", str(out), *options]) == 0
    document = json.loads((out / "results.json").read_text())
    primary = [(r["loss"], r["activity_penalty"]) for r in document["records"]]
    assert primary == [("spikemax_g", 0.0), ("mse_count", 0.0)]
    assert [(r["loss"], r["activity_penalty"]) for r in document["activity_penalty_records"]] == [
        ("spikemax_g", 2.0), ("mse_count", 2.0)
    ]  # fmt: skip
    # The regulariser changed the training: another final loss at the same seed.
    first, second = document["records"][0], document["activity_penalty_records"][0]
    assert first["seeds"][0]["final_train_loss"] != second["seeds"][0]["final_train_loss"]
    assert (out / "energy.png").stat().st_size > 10_000
    markdown = (out / "results.md").read_text()
    assert "## Compute per decision" in markdown and "| snntorch | mse_count | 2 |" in markdown
    assert document["energy_verdicts"][0]["overall"] == "smoke run, no verdict"


def test_a_run_recorded_before_the_per_decision_measures_says_they_were_not_measured():
    document = json.loads((REPOSITORY / "docs/results/mnist-saccades/results.json").read_text())
    assert document["schema_version"] == 3
    for block in ("per-decision", "activity-penalty", "energy-claim", "energy-plot"):
        assert render_block(block, document) == NOT_MEASURED
