"""The text of the results: verdict sentences, the claims list, the summary paragraph, the input line."""

from __future__ import annotations

import copy

from spikemax_bench.render import (
    claims_lines,
    comparison_text,
    input_activity_line,
    render_block,
    summary_lines,
    sweep_lines,
)
from spikemax_bench.verdicts import verdicts

from .test_stats import record


def test_verdict_text_reads_the_interval():
    claim = {"metric": "accuracy"}
    comparison = {
        "framework": "snntorch", "loss": "spikemax_g", "baseline": "mse_count", "value": 0.9072,
        "baseline_value": 0.8951, "difference": 0.0121, "ci95": [0.0043, 0.0199], "pairs": 5, "outcome": "holds",
    }  # fmt: skip
    assert comparison_text(claim, comparison) == (
        "snntorch, spikemax_g vs mse_count: 0.907 vs 0.895, difference +0.012 (95% CI +0.004 to +0.020, "
        "5 paired seeds): holds"
    )
    one_seed = {**comparison, "ci95": None, "pairs": 1, "outcome": "not tested"}
    assert comparison_text(claim, one_seed) == (
        "snntorch, spikemax_g vs mse_count: 0.907 vs 0.895 (one seed: no confidence interval): not tested"
    )


def test_one_seed_says_that_nothing_is_tested():
    records = [
        record("norse", "spikemax_g", [0.9], [0.2], [400.0]),
        record("norse", "mse_count", [0.8], [0.4], [600.0]),
    ]
    document = {"config": {"seeds": 1, "quick": False}, "verdicts": verdicts(records)}
    assert all(entry["overall"] == "not tested" for entry in document["verdicts"])
    lines = claims_lines(document)
    assert lines[0].startswith("One seed: no comparison is tested")
    assert "- **accuracy: not tested.**" in lines[2]


def test_a_run_without_the_baseline_says_what_is_missing():
    only_spikemax = [record("snntorch", "spikemax_g", [0.9] * 3, [0.2] * 3, [1.0] * 3)]
    document = {"config": {"seeds": 3, "quick": False}, "verdicts": verdicts(only_spikemax)}
    assert document["verdicts"] == []
    assert claims_lines(document) == [
        "Not tested: the run needs mse_count and spikemax_g or spikemax_s in one framework."
    ]


DOCUMENT = {
    "config": {
        "seeds": 5, "quick": False, "sweep": True, "sweep_seeds": 2, "learning_rates": [0.002], "epochs": 8,
        "architecture": "mlp", "hidden_size": 128, "batch_size": 64, "device": "cpu",
    },
    "dataset": {"name": "digits-dvs", "sizes": {"train": 1151, "validation": 287, "test": 359}, "time_steps": 30,
                "num_classes": 10},
    "candidates": {"spikemax_g": [{}, {}, {}]},
    "provenance": {
        "command": "spikemax-bench --seeds 5", "wall_seconds": 512.4, "cpu": "AMD EPYC", "gpu": None,
        "torch_threads": 1, "world_size": 1,
        "git": {"commit": "6c5a8d1047aad37a6eccd4e5a815c107b72d86f7", "dirty": False},
        "packages": {"torch": "2.13.0+cpu", "snntorch": "1.0.0", "norse": None},
    },
    "records": [
        {"summary": {"input_spikes_per_sample": {"mean": 2394.31, "std": 0.0},
                     "input_synaptic_operations_per_sample": {"mean": 306472.9, "std": 0.0}}},
        {"summary": {"input_spikes_per_sample": {"mean": 2394.31, "std": 0.0},
                     "input_synaptic_operations_per_sample": {"mean": 306472.9, "std": 0.0}}},
    ],
}  # fmt: skip


def test_summary_names_command_data_budget_machine_and_commit():
    (line,) = summary_lines(DOCUMENT)
    assert line.startswith("`spikemax-bench --seeds 5`: digits-dvs, 1151 train / 287 validation / 359 test samples, ")
    assert "sweep of 3 candidates per loss (learning rate 0.002) over 2 seeds; 5 test seeds, device cpu." in line
    assert "Took 8 min 32 s on AMD EPYC (1 torch thread, 1 process); torch 2.13.0+cpu, snntorch 1.0.0;" in line
    assert line.endswith("commit 6c5a8d1047aa.")
    dirty = copy.deepcopy(DOCUMENT)
    dirty["provenance"]["git"] = {"commit": "unknown", "dirty": None}
    dirty["config"]["quick"] = True
    lines = summary_lines(dirty)
    assert lines[0].startswith("Smoke run (`--quick`")
    assert lines[-1].endswith("commit unknown.")


def test_input_line_gives_the_input_apart_and_a_range_if_it_differs():
    assert input_activity_line(DOCUMENT).startswith(
        "Input, the same for every loss and left out above: 2394.3 input events and 306473 synaptic operations"
    )
    varied = copy.deepcopy(DOCUMENT)
    varied["records"][1]["summary"]["input_spikes_per_sample"]["mean"] = 2400.0
    assert "2394.3 to 2400.0 input events" in input_activity_line(varied)


def test_plot_blocks_point_to_the_run_folder_relative_to_the_page():
    assert render_block("accuracy-plot", DOCUMENT, image_dir="results/seeds5") == (
        "![Test accuracy of the running prediction over the time steps seen](results/seeds5/accuracy_vs_time.png)"
    )
    assert render_block("training-plot", DOCUMENT).endswith("](training_curves.png)")


def test_sweep_table_lists_every_candidate_with_its_rate_and_per_seed_scores():
    def candidate(learning_rate, pooled, per_seed, chosen):
        return {"hyper_parameters": {"true_rate": 0.8, "false_rate": 0.2}, "learning_rate": learning_rate,
                "validation_accuracy": pooled, "per_seed": [{"validation_accuracy": value} for value in per_seed],
                "chosen": chosen}  # fmt: skip

    candidates = [candidate(0.002, 0.8711, [0.882, 0.861], True), candidate(0.01, 0.8655, [0.85, 0.881], False)]
    sweep = {"seeds": [0, 1], "tie_margin": 0.01, "candidates": candidates}
    document = {"config": {"learning_rates": [0.002, 0.01], "sweep": True},
                "records": [{"framework": "norse", "loss": "mse_count", "sweep": sweep}]}  # fmt: skip
    lines = sweep_lines(document)
    assert lines[0].startswith("Validation split only. Each candidate trains with seeds 0, 1 (each seed its own")
    assert "The earliest candidate within 0.01 of the best score is chosen" in lines[0]
    assert lines[2] == "| framework | loss | candidate | validation accuracy | seed 0 | seed 1 | chosen |"
    assert lines[4] == "| norse | mse_count | true_rate=0.8 false_rate=0.2 lr=0.002 | 0.871 | 0.882 | 0.861 | yes |"
    assert lines[5] == "| norse | mse_count | true_rate=0.8 false_rate=0.2 lr=0.01 | 0.866 | 0.850 | 0.881 |  |"
    one_seed = {**sweep, "seeds": [0], "candidates": [candidate(0.002, 0.9, [0.9], True)]}
    document["records"][0]["sweep"] = one_seed
    assert "Each candidate trains with seed 0; its score is its validation accuracy." in sweep_lines(document)[0]
    assert sweep_lines({"config": {}, "records": [{"sweep": None}]}) == [
        "No sweep: every loss used its default hyper-parameters at the first learning rate."
    ]
