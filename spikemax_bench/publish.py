"""``python -m spikemax_bench.publish``: put the committed results into the README and the docs.

Published runs live in the repository, one folder each under ``docs/results/<run>/`` (``results.json`` and what
``spikemax-bench --out docs/results/<run>`` writes beside it). A Markdown file shows a run's numbers only between
markers, which this command fills from the run's ``results.json``::

    <!-- spikemax-bench:default:table -->
    (generated: never edit by hand)
    <!-- /spikemax-bench -->

The marker names the run (a folder under ``--results-dir``) and the block (one of
:data:`spikemax_bench.render.BLOCKS`: ``summary``, ``table``, ``energy``, ``claims``, ``sweep``,
``training``, ``early-exit``, ``early-exit-summary``, ``plots``, ``accuracy-plot``, ``spikes-plot``,
``training-plot``, ``early-exit-plot``). Image paths are written relative
to the Markdown file. The command also rewrites each referenced run's ``results.md`` and ``results.csv`` from its
``results.json`` (the plots are drawn by the bench; ``--plots`` redraws them).

Usage (from the repository root)::

    python -m spikemax_bench.publish            # rewrite README.md and docs/**/*.md that have markers
    python -m spikemax_bench.publish --check    # exit 1 and print a diff where a file is not current
    python -m spikemax_bench.publish FILE ...   # only these Markdown files

Rendering is deterministic: the text depends on the results files only. Exit codes: 0 done (or, with
``--check``, everything current); 1 ``--check`` found a file that differs; 2 a marker is malformed, names an
unknown block, or a run whose ``results.json`` is missing or unreadable.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .render import BLOCKS, PLOTS, render_block, results_markdown
from .store import RESULTS_FILE, atomic_write_text

__all__ = ["CLOSE", "DEFAULT_RESULTS_DIR", "PublishError", "main", "marked_files", "render_file"]

DEFAULT_RESULTS_DIR = Path("docs") / "results"
MARKER_PREFIX = "<!-- spikemax-bench:"
OPEN = re.compile(r"^<!-- spikemax-bench:(?P<run>[A-Za-z0-9_.-]+):(?P<block>[a-z-]+) -->$")
CLOSE = "<!-- /spikemax-bench -->"


class PublishError(Exception):
    """A marker or a run folder is not usable; the message names the file, line and what was expected."""


@dataclass
class _Runs:
    """Run documents read once per command."""

    results_dir: Path
    documents: dict[str, dict[str, Any]]

    def get(self, run: str, where: str) -> dict[str, Any]:
        if run not in self.documents:
            path = self.results_dir / run / RESULTS_FILE
            if not path.is_file():
                available = sorted(p.parent.name for p in self.results_dir.glob(f"*/{RESULTS_FILE}"))
                raise PublishError(
                    f"{where}: the marker names run {run!r}, but {path} does not exist (runs with results: "
                    f"{', '.join(available) or 'none'}); create it with `spikemax-bench ... --out {path.parent}`"
                )
            try:
                document = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as error:
                raise PublishError(f"{where}: cannot read {path}: {error}") from None
            from .report.document import READABLE_SCHEMA_VERSIONS

            if document.get("schema_version") not in READABLE_SCHEMA_VERSIONS:
                raise PublishError(
                    f"{where}: {path} has schema_version {document.get('schema_version')!r}, this code renders "
                    f"{', '.join(map(str, READABLE_SCHEMA_VERSIONS))}; produce the run again with this version of "
                    "spikemax-bench"
                )
            self.documents[run] = document
        return self.documents[run]


def _relative_posix(target: Path, start: Path) -> str:
    return Path(os.path.relpath(target.resolve(), start.resolve())).as_posix()


def render_file(text: str, path: Path, runs: _Runs) -> str:
    """``text`` (the Markdown file ``path``) with every marker block rendered from its run's results.json.

    Raises :class:`PublishError` for an unclosed, nested or stray marker, an unknown block or a missing run.
    """
    lines = text.split("\n")
    output: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        stripped = line.strip()
        where = f"{path}:{index + 1}"
        if stripped == CLOSE:
            raise PublishError(f"{where}: {CLOSE} without an opening <!-- spikemax-bench:RUN:BLOCK --> above it")
        if not stripped.startswith(MARKER_PREFIX):
            output.append(line)
            index += 1
            continue
        match = OPEN.match(stripped)
        if match is None:
            raise PublishError(
                f"{where}: malformed marker {stripped!r}; expected <!-- spikemax-bench:RUN:BLOCK --> with BLOCK one "
                f"of {', '.join(BLOCKS)}"
            )
        if match["block"] not in BLOCKS:
            raise PublishError(f"{where}: unknown block {match['block']!r}; expected one of {', '.join(BLOCKS)}")
        end = index + 1
        while end < len(lines) and lines[end].strip() != CLOSE:
            if lines[end].strip().startswith(MARKER_PREFIX):
                raise PublishError(f"{path}:{end + 1}: a marker inside the block opened at line {index + 1}")
            end += 1
        if end == len(lines):
            raise PublishError(f"{where}: the block {match['run']}:{match['block']} is never closed with {CLOSE}")
        document = runs.get(match["run"], where)
        run_dir = runs.results_dir / match["run"]
        if match["block"] in PLOTS or match["block"] == "plots":
            names = list(PLOTS) if match["block"] == "plots" else [match["block"]]
            for name in names:
                if not (run_dir / PLOTS[name][0]).is_file():
                    raise PublishError(
                        f"{where}: {run_dir / PLOTS[name][0]} does not exist; run the bench again, or publish with "
                        "--plots to draw it from results.json"
                    )
        block = render_block(match["block"], document, image_dir=_relative_posix(run_dir, path.parent))
        output += [line, "", block, "", lines[end]]
        index = end + 1
    return "\n".join(output)


def marked_files(root: Path, results_dir: Path | None = None) -> list[Path]:
    """README.md and every ``docs/**/*.md`` under ``root`` that holds a marker, except inside ``results_dir``;
    returns their paths, README first, then the docs pages in sorted order."""
    results_dir = (results_dir or root / DEFAULT_RESULTS_DIR).resolve()
    candidates = [root / "README.md", *sorted((root / "docs").rglob("*.md"))]
    found = []
    for path in candidates:
        if not path.is_file() or path.resolve().is_relative_to(results_dir):
            continue
        text = path.read_text(encoding="utf-8")
        if MARKER_PREFIX in text or CLOSE in text:  # a stray closing marker is an error to report, not to skip
            found.append(path)
    return found


def referenced_runs(text: str) -> list[str]:
    """Names of the runs that the markers in ``text`` refer to, in order of first appearance."""
    matches = (OPEN.match(line.strip()) for line in text.split("\n"))
    return list(dict.fromkeys(match["run"] for match in matches if match))


def _diff(old: str, new: str, path: Path) -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=f"{path} (as committed)",
            tofile=f"{path} (as the committed results render)",
        )
    )


def _targets(arguments: argparse.Namespace, root: Path, results_dir: Path) -> list[Path]:
    if arguments.files:
        return [Path(file) for file in arguments.files]
    return marked_files(root, results_dir)


def _run_files(run: str, runs: _Runs) -> Iterator[tuple[Path, str]]:
    from .report.csv_files import csv_text

    document = runs.get(run, f"run {run}")
    run_dir = runs.results_dir / run
    yield run_dir / "results.md", results_markdown(document)
    yield run_dir / "results.csv", csv_text(document)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m spikemax_bench.publish",
        description="Fill the <!-- spikemax-bench:RUN:BLOCK --> ... <!-- /spikemax-bench --> blocks of Markdown "
        "files from the committed runs under --results-dir, and each run's results.md and results.csv.",
    )
    parser.add_argument(
        "files", nargs="*", help="Markdown files (default: README.md and docs/**/*.md that contain markers)"
    )
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 with a diff when a file is not current"
    )
    parser.add_argument("--root", default=".", help="repository root (default: the current folder)")
    parser.add_argument(
        "--results-dir", default=None, help=f"folder of the runs (default: ROOT/{DEFAULT_RESULTS_DIR.as_posix()})"
    )
    parser.add_argument(
        "--plots", action="store_true", help="also redraw each referenced run's plots from its results.json"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Publish (or check) the results; returns the exit code."""
    arguments = build_parser().parse_args(argv)
    root = Path(arguments.root)
    results_dir = Path(arguments.results_dir) if arguments.results_dir else root / DEFAULT_RESULTS_DIR
    runs = _Runs(results_dir, {})
    stale: list[Path] = []
    try:
        targets = _targets(arguments, root, results_dir)
        if arguments.plots and not arguments.check:
            from .report.plots import write_plots

            for path in targets:
                for run in referenced_runs(path.read_text(encoding="utf-8")):
                    list(write_plots(runs.get(run, str(path)), results_dir / run))
        rendered: list[tuple[Path, str, str]] = []
        run_names: list[str] = []
        for path in targets:
            if not path.is_file():
                raise PublishError(f"{path}: no such Markdown file")
            old = path.read_text(encoding="utf-8")
            rendered.append((path, old, render_file(old, path, runs)))
            run_names += referenced_runs(old)
        for run in dict.fromkeys(run_names):
            for path, new in _run_files(run, runs):
                rendered.append((path, path.read_text(encoding="utf-8") if path.is_file() else "", new))
    except PublishError as error:
        print(f"publish: error: {error}", file=sys.stderr)
        return 2
    for path, old, new in rendered:
        if old == new:
            continue
        stale.append(path)
        if arguments.check:
            sys.stdout.write(_diff(old, new, path))
        else:
            atomic_write_text(path, new)
    if arguments.check and stale:
        print(
            f"publish: {len(stale)} file(s) do not show the committed results: {', '.join(map(str, stale))}. "
            "Regenerate them with `python -m spikemax_bench.publish`.",
            file=sys.stderr,
        )
        return 1
    if arguments.check:
        print(f"publish: all {len(rendered)} file(s) show the committed results")
    else:
        print(f"publish: {len(rendered)} file(s) checked, {len(stale)} rewritten")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
