"""What a user sees: overall progress with elapsed and remaining time, tables that fit 100 columns without
breaking a word, plots whose axes say what they show, and the plural list options with singular aliases."""

from __future__ import annotations

import copy
import io
import json

import pytest
from rich.console import Console

from spikemax_bench import cli
from spikemax_bench.measures import EARLY_EXIT_METRICS
from spikemax_bench.report.plots import accuracy_figure, activity_figure, early_exit_figure
from spikemax_bench.report.progress import ProgressDisplay
from spikemax_bench.report.tables import terminal_report


@pytest.fixture(scope="module")
def three_seed_run(tmp_path_factory):
    """A quick three-seed run on iris with two learning rates in the configuration (long hyper-parameter text)."""
    out = tmp_path_factory.mktemp("three-seeds")
    assert cli.main(["--quick", "--dataset", "uci-iris", "--seeds", "3", "--learning-rates", "2e-3,5e-3",
                     "--out", str(out)]) == 0  # fmt: skip
    return json.loads((out / "results.json").read_text())


def widest_case(document: dict) -> dict:
    """``document`` with the widest numbers the default run can produce in every column."""
    document = copy.deepcopy(document)
    document["config"]["quick"] = False
    document["config"]["sweep"] = True  # a run that chose among learning rates names the rate: the longest text
    large = {
        "accuracy": (0.9072, 0.0061), "steps_to_decision": (11.53, 0.41), "time_to_decision_fraction": (0.4163, 0.0131),
        "no_decision_fraction": (0.0451, 0.0152), "output_spikes_per_sample": (41.62, 0.21),
        "hidden_spikes_per_sample": (1978.4, 151.6), "network_spikes_per_sample": (2020.0, 151.8),
        "hidden_synaptic_operations_per_sample": (123456.0, 7890.0), "final_train_loss": (89.8922, 10.269),
        "seconds_per_epoch": (12.3, 1.2),
    }  # fmt: skip
    for record in document["records"]:
        for metric, (mean, std) in large.items():
            record["summary"][metric] = {"mean": mean, "std": std}
        for entry in record["summary"]["early_exit"]:
            entry.update({metric: {"mean": 0.9072, "std": 0.0061} for metric in EARLY_EXIT_METRICS})
    return document


def rendered_text(renderables: list, width: int = 100) -> str:
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    for renderable in renderables:
        console.print(renderable)
    return console.export_text()


def test_the_final_tables_fit_100_columns_without_breaking_a_word(three_seed_run):
    document = widest_case(three_seed_run)
    renderables = terminal_report(document)
    text = rendered_text(renderables)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 100
    tables = [item for item in renderables if hasattr(item, "columns")]
    assert len(tables) == 4
    for table in tables:
        for column in table.columns:
            for cell in column._cells:
                # A number with its spread, or one hyper-parameter, always stays on one line.
                for piece in cell.split(" ") if column.header == "hyper-parameters" else [cell]:
                    assert any(piece in line for line in lines), (column.header, piece)
    assert "0.907 ± 0.006" in text and "123456 ± 7890" in text and "89.8922 ± 10.2690" in text
    assert "true_rate=0.8" in text and "lr=0.002" in text
    assert "│ snntorch  │ spikemax_g │ 0.907 → 0.907 │ 0.907 │  0.907 │ 0.907 │  0.907 │    0.907 │" in text


def test_the_early_exit_table_shows_the_headline_rule_and_the_conformal_coverage(three_seed_run):
    document = copy.deepcopy(three_seed_run)
    record = document["records"][1]  # snntorch spikemax_s
    for entry in record["summary"]["early_exit"]:
        if (entry["method"], entry["alpha"]) == ("accuracy", 0.01):
            entry.update(accuracy={"mean": 0.8312, "std": 0.01}, exit_fraction={"mean": 0.4167, "std": 0.02},
                         hidden_synaptic_operations_share={"mean": 0.3333, "std": 0.0},
                         synaptic_operations_share={"mean": 0.4444, "std": 0.0},
                         network_spikes_share={"mean": 0.3561, "std": 0.0})  # fmt: skip
        if entry["method"] == "conformal":
            entry["coverage"] = {"mean": 0.9131, "std": 0.01}
    record["summary"]["accuracy"] = {"mean": 0.8401, "std": 0.01}
    text = rendered_text(terminal_report(document))
    assert "Early exit at ≤ 1 point accuracy loss on validation (rule accuracy, alpha = 0.01)" in text
    assert "│ snntorch  │ spikemax_s │ 0.840 → 0.831 │ 0.417 │  0.333 │ 0.444 │  0.356 │    0.913 │" in text
    assert "Means over 3 seeds (± std in results.md)." in text


def test_early_exit_plot_axes_and_legend(three_seed_run):
    figure = early_exit_figure(three_seed_run)
    axes = figure.axes
    assert [axis.get_title() for axis in axes] == ["snntorch", "norse"]
    assert axes[0].get_ylabel() == "test accuracy with early exit"
    assert all(axis.get_xlabel() == "share of the time steps used (mean of (exit step + 1) / T)" for axis in axes)
    legend = [text.get_text() for text in axes[-1].get_legend().get_texts()]
    alphas = ["alpha = 0", "alpha = 0.005", "alpha = 0.01", "alpha = 0.02", "alpha = 0.05", "alpha = 0.1"]
    assert legend == ["spikemax_g", "spikemax_s", "ce_count", "mse_count", "full window", *alphas]
    # Per loss: the curve through the six alphas, then a star at a share of 1 at the full-window accuracy.
    record = three_seed_run["records"][0]
    curve = axes[0].get_lines()[0]
    expected = [entry["exit_fraction"]["mean"] for entry in record["summary"]["early_exit"][:6]]
    assert list(curve.get_xdata()) == expected
    stars = [line for line in axes[0].get_lines() if line.get_marker() == "*"]
    assert list(stars[0].get_xdata()) == [1.0] and list(stars[0].get_ydata()) == [record["summary"]["accuracy"]["mean"]]
    assert figure._suptitle.get_text().startswith("SMOKE RUN (--quick), not a result: Early exit")


def test_a_quick_run_is_labelled_a_smoke_run_in_the_terminal(three_seed_run):
    text = rendered_text(terminal_report(three_seed_run))
    assert text.startswith("SMOKE RUN (--quick), not a result: uci-iris, test split (30 samples)")
    assert "SMOKE RUN (--quick): no verdict on the paper's claims." in text
    assert "holds" not in text


def test_log_output_shows_run_k_of_n_with_elapsed_and_remaining_time(tmp_path, capsys):
    options = ["--quick", "--dataset", "uci-iris", "--losses", "spikemax_g,mse_count", "--out", str(tmp_path)]
    assert cli.main(options) == 0
    lines = capsys.readouterr().out.splitlines()
    runs = [line for line in lines if line.startswith("[run ")]
    assert [line.split("]")[0] for line in runs] == [f"[run {k} of 4" for k in range(1, 5)]
    assert runs[0] == "[run 1 of 4] snntorch spikemax_g smoothing=1 seed 0 (elapsed 0:00:00, about unknown left)"
    assert all(" left)" in line and "(elapsed " in line for line in runs)
    assert "about unknown left" not in runs[1]  # known after the first training


def test_terminal_progress_puts_the_overall_bar_above_each_run():
    display = ProgressDisplay(Console(file=io.StringIO(), force_terminal=True, width=100))
    with display:
        display.plan(trainings=3, batches=30, finished=0)
        with display.training("snntorch spikemax_g smoothing=1 seed 0", 10) as task:
            for _ in range(4):
                task.advance()
            tasks = display._progress.tasks
            assert [item.description for item in tasks] == ["run 1 of 3", "  snntorch spikemax_g smoothing=1 seed 0"]
            assert [item.completed for item in tasks] == [4, 4]
            assert [item.total for item in tasks] == [30, 10]
        assert [item.description for item in display._progress.tasks] == ["run 1 of 3"]
        with display.training("norse mse_count seed 0", 10):
            assert display._progress.tasks[0].description == "run 2 of 3"
            with display.task("digits-dvs: building frames", 5) as data_task:  # the data loaders' hook
                data_task.advance(2)
                assert [item.completed for item in display._progress.tasks] == [4, 0, 2]


def test_accuracy_plot_axes_band_and_chance_line(three_seed_run):
    figure = accuracy_figure(three_seed_run)
    axes = figure.axes
    assert [axis.get_title() for axis in axes] == ["snntorch", "norse"]
    assert axes[0].get_ylabel() == "test accuracy of the running prediction"
    assert all(axis.get_xlabel() == "time steps seen (t + 1)" for axis in axes)
    curve = axes[0].get_lines()[0]
    assert list(curve.get_xdata()) == list(range(1, 11))  # T = 10 steps seen: 1..10, as in "steps to decision"
    chance = [line for line in axes[0].get_lines() if line.get_label().startswith("chance")]
    assert chance[0].get_label() == "chance (1/C = 0.33)"
    assert list(chance[0].get_ydata()) == pytest.approx([1 / 3, 1 / 3])
    legend = [text.get_text() for text in axes[-1].get_legend().get_texts()]
    assert legend[-1] == "band: ±1 std over 3 seeds"
    assert figure._suptitle.get_text().startswith("SMOKE RUN (--quick), not a result: uci-iris")


def test_activity_plot_shows_only_what_the_loss_changes(three_seed_run):
    figure = activity_figure(three_seed_run)
    assert [axis.get_ylabel() for axis in figure.axes] == [
        "output spikes per sample",
        "hidden-layer spikes per sample",
        "synaptic operations per sample\ndriven by hidden spikes",
    ]
    title = figure._suptitle.get_text()
    assert "error bars: ±1 std over 3 seeds" in title
    assert "Input, the same for every loss and not shown:" in title
    one_seed = copy.deepcopy(three_seed_run)
    one_seed["config"]["seeds"] = 1
    assert "error bars" not in activity_figure(one_seed)._suptitle.get_text()


def test_plural_options_and_singular_aliases():
    parser = cli.build_parser()
    plural = parser.parse_args(
        ["--frameworks", "norse,snntorch", "--losses", "mse_count", "--learning-rates", "1e-3,3e-3"]
    )
    singular = parser.parse_args(
        ["--framework", "norse,snntorch", "--loss", "mse_count", "--learning-rate", "1e-3,3e-3"]
    )
    assert vars(plural) == vars(singular)
    assert plural.frameworks == ("norse", "snntorch") and plural.losses == ("mse_count",)
    assert plural.learning_rates == (1e-3, 3e-3)
    assert parser.parse_args([]).frameworks == ("snntorch", "norse")
