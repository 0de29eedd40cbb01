"""Published runs are generated, never typed: the marker blocks of Markdown files are rendered from committed
results, ``--check`` fails with a diff when a file does not show them, and the repository's own pages pass it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from spikemax_bench import cli
from spikemax_bench.publish import OPEN, main, marked_files, referenced_runs
from spikemax_bench.render import BLOCKS

ROOT = Path(__file__).resolve().parents[2]


def marker(run: str, block: str) -> str:
    return f"<!-- spikemax-bench:{run}:{block} -->\n<!-- /spikemax-bench -->"


README = f"""# A project

Hand-written text stays as it is.

{marker("demo", "table")}

Between the blocks.

{marker("demo", "accuracy-plot")}

{marker("demo", "claims")}
"""


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A two-seed quick run, as spikemax-bench writes it."""
    out = tmp_path_factory.mktemp("run") / "demo"
    assert cli.main(["--quick", "--dataset", "uci-iris", "--seeds", "2", "--out", str(out)]) == 0
    return out


@pytest.fixture
def repo(tmp_path, run_folder):
    """A repository with docs/results/demo/, a README and two docs pages with markers, and one without."""
    shutil.copytree(run_folder, tmp_path / "docs" / "results" / "demo")
    document_path = tmp_path / "docs" / "results" / "demo" / "results.json"
    document = json.loads(document_path.read_text())
    # Known numbers for the first row: mean 0.9072, std 0.0061 over the two seeds.
    document["records"][0]["summary"]["accuracy"] = {"mean": 0.9072, "std": 0.0061}
    document_path.write_text(json.dumps(document))
    (tmp_path / "README.md").write_text(README)
    (tmp_path / "docs" / "page.md").write_text(f"# Page\n\n{marker('demo', 'plots')}\n")
    (tmp_path / "docs" / "guide").mkdir()
    (tmp_path / "docs" / "guide" / "deeper.md").write_text(f"{marker('demo', 'spikes-plot')}\n")
    (tmp_path / "docs" / "plain.md").write_text("# No markers here\n")
    return tmp_path


def publish(repo: Path, *options: str) -> int:
    return main(["--root", str(repo), *options])


def test_publish_fills_every_block_from_the_results(repo):
    assert publish(repo) == 0
    readme = (repo / "README.md").read_text()
    assert readme.startswith("# A project\n\nHand-written text stays as it is.\n\n")
    assert "\n<!-- spikemax-bench:demo:table -->\n\n**SMOKE RUN" in readme
    assert "**SMOKE RUN (--quick), not a result: uci-iris, test split (30 samples), T = 10, 2 seeds" in readme
    assert "| snntorch | spikemax_g | smoothing=1 | 0.907 ± 0.006 |" in readme
    assert "\n\nBetween the blocks.\n\n" in readme
    assert "smoke run, not a result)](docs/results/demo/accuracy_vs_time.png)\n\n<!-- /spikemax-bench -->" in readme
    assert "No verdict on the paper's claims." in readme
    page = (repo / "docs" / "page.md").read_text()
    for name in ("accuracy_vs_time.png", "spikes_per_sample.png", "training_curves.png"):
        assert f"(results/demo/{name})" in page  # relative to docs/page.md
    assert "(../results/demo/spikes_per_sample.png)" in (repo / "docs" / "guide" / "deeper.md").read_text()
    assert (repo / "docs" / "plain.md").read_text() == "# No markers here\n"


def test_early_exit_blocks_render_the_table_the_sentences_and_the_plot(repo):
    document_path = repo / "docs" / "results" / "demo" / "results.json"
    document = json.loads(document_path.read_text())
    summary = document["records"][0]["summary"]  # snntorch spikemax_g, accuracy 0.9072 ± 0.0061 (the fixture's)
    known = {"accuracy": (0.9011, 0.004), "exit_fraction": (0.3846, 0.02), "hidden_synaptic_operations_share":
             (0.3512, 0.01), "synaptic_operations_share": (0.4123, 0.015), "network_spikes_share": (0.3601, 0.012)}
    for entry in summary["early_exit"]:
        if (entry["method"], entry["alpha"]) == ("accuracy", 0.01):
            entry.update({name: {"mean": mean, "std": std} for name, (mean, std) in known.items()})
        if entry["method"] == "conformal":
            entry.update(coverage={"mean": 0.9333, "std": 0.0101}, calibrated_seeds=2)
    document_path.write_text(json.dumps(document))
    page = repo / "docs" / "early.md"
    page.write_text("\n\n".join(marker("demo", block) for block in ("early-exit", "early-exit-summary",
                                                                     "early-exit-plot")) + "\n")  # fmt: skip
    assert publish(repo) == 0
    text = page.read_text()
    assert (
        "| framework | loss | accuracy, full window | accuracy, early exit | time steps used | synaptic ops from "
        "hidden spikes used | all synaptic ops used | hidden + output spikes used | coverage of the conformal rule "
        "(alpha = 0.1) |"
    ) in text
    assert "| snntorch | spikemax_g | 0.907 ± 0.006 | 0.901 ± 0.004 | 0.385 ± 0.020 | 0.351 ± 0.010 | 0.412 ± 0.015 " \
        "| 0.360 ± 0.012 | 0.933 ± 0.010 |" in text  # fmt: skip
    assert "calibrated on each seed's validation split to lose at most 1 point of accuracy there" in text
    # The other losses' conformal rule needs 39 validation samples; iris has 24.
    assert "it needs at least 39 validation samples (this run has 24)" in text
    assert (
        "- snntorch: at ≤ 1 point accuracy loss (the alpha = 0.01 rule), `spikemax_g` needs 38% of the time steps "
        "and 41% of the synaptic operations (test accuracy 0.901 with early exit, 0.907 over the full window)."
    ) in text
    assert "with the rule calibrated on the validation split to lose at most 1 point of accuracy there (uci-iris, " \
        "mean over 2 seeds):" in text  # fmt: skip
    assert "smoke run, not a result)](results/demo/early_exit.png)" in text


def test_rendering_is_deterministic_and_check_passes_after_publishing(repo, capsys):
    assert publish(repo) == 0
    first = {path: path.read_bytes() for path in repo.rglob("*.md")}
    assert publish(repo) == 0
    assert "0 rewritten" in capsys.readouterr().out
    assert {path: path.read_bytes() for path in repo.rglob("*.md")} == first
    assert publish(repo, "--check") == 0


def test_check_fails_with_a_diff_when_the_results_changed(repo, capsys):
    assert publish(repo) == 0
    capsys.readouterr()
    document_path = repo / "docs" / "results" / "demo" / "results.json"
    document = json.loads(document_path.read_text())
    document["records"][0]["summary"]["accuracy"] = {"mean": 0.9113, "std": 0.0061}
    document_path.write_text(json.dumps(document))
    before = (repo / "README.md").read_text()
    assert publish(repo, "--check") == 1
    captured = capsys.readouterr()
    assert "-| snntorch | spikemax_g | smoothing=1 | 0.907 ± 0.006 |" in captured.out
    assert "+| snntorch | spikemax_g | smoothing=1 | 0.911 ± 0.006 |" in captured.out
    assert f"--- {repo / 'README.md'} (as committed)" in captured.out
    assert str(repo / "README.md") in captured.err and "python -m spikemax_bench.publish" in captured.err
    assert (repo / "README.md").read_text() == before  # --check changes nothing
    assert publish(repo) == 0
    assert publish(repo, "--check") == 0


def test_check_fails_when_a_block_was_edited_by_hand(repo, capsys):
    assert publish(repo) == 0
    readme = repo / "README.md"
    readme.write_text(readme.read_text().replace("0.907 ± 0.006", "0.950 ± 0.001"))
    assert publish(repo, "--check") == 1
    assert "+| snntorch | spikemax_g | smoothing=1 | 0.907 ± 0.006 |" in capsys.readouterr().out


def test_the_run_folders_results_md_is_checked_too(repo, capsys):
    assert publish(repo) == 0
    run_markdown = repo / "docs" / "results" / "demo" / "results.md"
    assert "| snntorch | spikemax_g | smoothing=1 | 0.907 ± 0.006 |" in run_markdown.read_text()
    run_markdown.write_text("# typed by hand\n")
    assert publish(repo, "--check") == 1
    assert str(run_markdown) in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (marker("nothing-here", "table"), "the marker names run 'nothing-here', but"),
        (marker("demo", "histogram"), "unknown block 'histogram'; expected one of summary, table"),
        ("<!-- spikemax-bench:demo:table -->\nno end", "the block demo:table is never closed"),
        ("text\n<!-- /spikemax-bench -->", ":2: <!-- /spikemax-bench --> without an opening"),
        ("<!-- spikemax-bench:demo:table -->\n" + marker("demo", "claims"), ":2: a marker inside the block opened at"),
        ("<!-- spikemax-bench:demo table -->", "malformed marker"),
    ],
)
def test_bad_markers_exit_2_naming_the_file_and_line(repo, capsys, text, message):
    (repo / "docs" / "page.md").write_text(text + "\n")
    assert publish(repo, "--check") == 2
    error = capsys.readouterr().err
    assert message in error and "page.md:" in error
    if "nothing-here" in message:
        assert "runs with results: demo" in error


def test_a_missing_plot_is_an_error_and_plots_redraws_it(repo, capsys):
    (repo / "docs" / "results" / "demo" / "accuracy_vs_time.png").unlink()
    assert publish(repo, "--check") == 2
    assert "accuracy_vs_time.png does not exist" in capsys.readouterr().err
    assert publish(repo, "--plots") == 0
    assert (repo / "docs" / "results" / "demo" / "accuracy_vs_time.png").read_bytes()[:4] == b"\x89PNG"


def test_marked_files_are_readme_and_docs_pages_with_markers(repo):
    assert marked_files(repo) == [repo / "README.md", repo / "docs" / "guide" / "deeper.md", repo / "docs" / "page.md"]
    assert referenced_runs(README) == ["demo"]
    assert set(BLOCKS) >= {"summary", "table", "energy", "claims", "sweep", "plots"}


# --------------------------------------------------------------------------------- this repository's pages


def test_the_results_page_uses_markers():
    assert ROOT / "docs" / "results.md" in marked_files(ROOT)


@pytest.mark.parametrize("path", marked_files(ROOT), ids=lambda path: str(path.relative_to(ROOT)))
def test_every_marked_page_shows_the_committed_results(path):
    runs = referenced_runs(path.read_text())
    missing = [run for run in runs if not (ROOT / "docs" / "results" / run / "results.json").is_file()]
    if missing:
        pytest.skip(
            f"{path.relative_to(ROOT)} shows runs not generated yet ({', '.join(missing)}): produce them with "
            "spikemax-bench --out docs/results/<run>, then python -m spikemax_bench.publish"
        )
    assert main(["--check", "--root", str(ROOT), str(path)]) == 0


def test_marker_syntax():
    assert OPEN.match("<!-- spikemax-bench:seeds5:energy -->")["block"] == "energy"
    assert OPEN.match("<!-- spikemax-bench:seeds5 -->") is None
