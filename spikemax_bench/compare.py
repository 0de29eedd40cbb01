"""``python -m spikemax_bench.compare NEW.json COMMITTED.json [SAME_RUN_ON_OTHER_CPU.json ...]``: are the committed
numbers still current?

CI re-runs the default ``spikemax-bench`` (deterministic on CPU: same seeds, same data order, one thread) and
compares its ``results.json`` with the committed ``docs/results/default/results.json``. Every value must be
equal, except what legitimately differs between two runs of the same code:

* ``provenance`` (commit, versions, command line, start time, wall time, CPU, GPU, threads, world size);
* wall-clock timings wherever they appear: ``epoch_seconds`` (per training curve) and ``seconds_per_epoch``
  (per seed, and its mean and std in each summary);
* ``config.data_dir`` and ``config.cache_dir`` (where the data was read from, not what it is).

Everything else is compared: the configuration, the data set's description and split sizes, the sweep grid,
every candidate's validation accuracy, every seed's test measures and curves, its early-exit rules (thresholds
included) and their measures, the summaries and the verdicts.
Numbers are compared exactly unless ``--rtol`` is given (for a machine whose floating point differs).

Float rounding differs between CPU models (an AMD EPYC and an Intel Xeon train the same seeds into different
networks), so several committed runs of the same experiment may be given, one per CPU: the new run is compared
with the one made on its own CPU (``provenance.cpu``), or with the first when none was. Every committed run must
describe the same experiment (``config``), so a run recorded on another CPU cannot hide a changed setting.

Exit codes: 0 equal; 1 a measured value differs (each difference printed as framework / loss / seed / measure,
committed vs new); 2 a file is missing, is not JSON, or is not a spikemax-bench results file.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = ["IGNORED_KEYS", "IGNORED_PATHS", "differences", "main"]

IGNORED_PATHS = {("provenance",), ("config", "data_dir"), ("config", "cache_dir")}
IGNORED_KEYS = {"epoch_seconds", "seconds_per_epoch"}
# The fields that name an entry of each list of records ("snntorch / spikemax_g / seed 0"); other lists go by
# position. Only fields that stay the same when a number changes: a record is not named by its chosen candidate.
_IDENTITY = {
    "records": ("framework", "loss"),
    "seeds": ("seed",),
    "verdicts": ("claim",),  # labelled "claim accuracy"
    "comparisons": ("framework", "loss"),
    "candidates": ("candidate",),
    "per_seed": ("seed",),
    "rules": ("method", "alpha"),  # a seed's early-exit rules: "method accuracy / alpha 0.01"
    "early_exit": ("method", "alpha"),  # their summary over seeds
}
_MAX_SHOWN = 60

class _Item(str):
    """A path segment naming a list entry (by its identity fields, or "[i]" by position)."""


Path_ = tuple[str, ...]


def _field_label(field: str, value: Any) -> str:
    return str(value) if field in ("framework", "loss") else f"{field} {value}"  # "seed 0", "claim accuracy"


def _label(list_name: str, item: Any, position: int) -> str:
    fields = _IDENTITY.get(list_name, ())
    if fields and isinstance(item, dict) and all(field in item for field in fields):
        return " / ".join(_field_label(field, item[field]) for field in fields)
    return f"[{position}]"


def _leaves(value: Any, path: Path_ = ()) -> Iterator[tuple[Path_, Any]]:
    """(path, value) of every compared leaf; list entries are named by their identity fields where they have
    them (so that a reordered or missing record is reported by name), else by position."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in IGNORED_KEYS or (*path, key) in IGNORED_PATHS:
                continue
            yield from _leaves(item, (*path, key))
    elif isinstance(value, list):
        list_name = path[-1] if path else ""
        labels = [_label(list_name, item, position) for position, item in enumerate(value)]
        if len(set(labels)) != len(labels):  # not unique: fall back to positions
            labels = [f"[{position}]" for position in range(len(value))]
        for label, item in zip(labels, value, strict=True):
            yield from _leaves(item, (*path, _Item(label)))
    else:
        yield path, value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _equal(old: Any, new: Any, rtol: float) -> bool:
    if _is_number(old) and _is_number(new):
        return old == new or (rtol > 0 and math.isclose(old, new, rel_tol=rtol, abs_tol=0.0))
    return old == new


def _format_path(path: Path_) -> str:
    """E.g. ``"snntorch / spikemax_g / seed 0: test.accuracy"``: the named list entries (framework, loss, seed,
    claim, candidate) first, then the fields; the name of a list whose entries are named is left out."""
    where: list[str] = []
    fields: list[str] = []
    for index, part in enumerate(path):
        following = path[index + 1] if index + 1 < len(path) else None
        if isinstance(part, _Item):
            if part.startswith("["):
                fields[-1:] = [f"{fields[-1]}{part}" if fields else part]
            else:
                where.append(part)
        elif not (isinstance(following, _Item) and not following.startswith("[")):
            fields.append(part)
    what = ".".join(fields)
    return f"{' / '.join(where)}: {what}" if where else what


def differences(new: dict[str, Any], committed: dict[str, Any], *, rtol: float = 0.0) -> list[str]:
    """One readable line per compared value that differs between two results documents (empty when equal)."""
    old_leaves = dict(_leaves(committed))
    new_leaves = dict(_leaves(new))
    lines = []
    for path in dict.fromkeys([*old_leaves, *new_leaves]):
        if path not in new_leaves:
            lines.append(f"{_format_path(path)}: committed {old_leaves[path]!r}, missing in the new run")
        elif path not in old_leaves:
            lines.append(f"{_format_path(path)}: new run {new_leaves[path]!r}, missing in the committed run")
        elif not _equal(old_leaves[path], new_leaves[path], rtol):
            old, fresh = old_leaves[path], new_leaves[path]
            change = ""
            if _is_number(old) and _is_number(fresh):
                change = f" ({fresh - old:+.6g})"
            lines.append(f"{_format_path(path)}: committed {old!r}, new {fresh!r}{change}")
    return lines


def _load(path: str) -> dict[str, Any]:
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read {path}: {error}") from None
    if not isinstance(document, dict) or "schema_version" not in document or "records" not in document:
        raise ValueError(f"{path} is not a spikemax-bench results.json (no schema_version or records)")
    return document


def _cpu(document: dict[str, Any]) -> Any:
    provenance = document.get("provenance")
    return provenance.get("cpu") if isinstance(provenance, dict) else None


def main(argv: Sequence[str] | None = None) -> int:
    """Compare two results files; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m spikemax_bench.compare",
        description="Exit 1, listing each difference, when a fresh results.json's measured values differ from "
        "the committed one (provenance and wall-clock timings are ignored).",
    )
    parser.add_argument("new", help="results.json of the fresh run")
    parser.add_argument(
        "committed",
        nargs="+",
        help="the committed results.json, e.g. docs/results/default/results.json, then optionally the same run "
        "recorded on other CPUs: the new run is compared with the one made on its CPU (else with the first)",
    )
    parser.add_argument(
        "--rtol",
        type=float,
        default=0.0,
        help="relative tolerance for numbers (default: 0, exact; the bench is deterministic on one machine)",
    )
    arguments = parser.parse_args(argv)
    if not (arguments.rtol >= 0 and math.isfinite(arguments.rtol)):
        print(f"compare: error: --rtol must be a finite number >= 0, got {arguments.rtol}", file=sys.stderr)
        return 2
    try:
        new = _load(arguments.new)
        candidates = [(path, _load(path)) for path in arguments.committed]
    except ValueError as error:
        print(f"compare: error: {error}", file=sys.stderr)
        return 2
    first_path, first = candidates[0]
    for path, document in candidates[1:]:
        if document.get("config") != first.get("config"):
            print(f"compare: error: {path} is not the experiment of {first_path} (their config differs)",
                  file=sys.stderr)
            return 2
    cpu = _cpu(new)
    committed_path, committed = next(((path, doc) for path, doc in candidates if _cpu(doc) == cpu), candidates[0])
    if len(candidates) > 1:
        recorded = ", ".join(f"{_cpu(doc)!r} ({path})" for path, doc in candidates)
        matched = "the one made on the same CPU" if _cpu(committed) == cpu else "none was made on this CPU: the first"
        print(f"compare: the new run ran on {cpu!r}; committed runs: {recorded}; comparing with {matched}")
    found = differences(new, committed, rtol=arguments.rtol)
    if not found:
        print(f"compare: {arguments.new} reproduces {committed_path} (provenance and timings ignored)")
        return 0
    print(f"compare: {arguments.new} differs from {committed_path} in {len(found)} value(s):")
    for line in found[:_MAX_SHOWN]:
        print(f"  {line}")
    if len(found) > _MAX_SHOWN:
        print(f"  ... and {len(found) - _MAX_SHOWN} more")
    print(
        "If the change is intended, regenerate the published run (spikemax-bench --out docs/results/default "
        "--overwrite, then python -m spikemax_bench.publish) and commit it; a run recorded on another CPU is "
        "re-recorded on that CPU (or removed)."
    )
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
