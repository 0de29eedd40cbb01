"""results.json, and the files derived from it.

``results.json`` keys: ``schema_version``, ``provenance`` (:func:`spikemax_bench.provenance.provenance`),
``config``, ``dataset``, ``candidates`` (the sweep grid per loss), ``records`` (one per framework x loss at the
first activity penalty, see :func:`spikemax_bench.run.run_benchmark`), ``activity_penalty_records`` (the same at
every further activity penalty of ``--activity-penalty``; empty without), ``verdicts``
(:func:`spikemax_bench.verdicts.verdicts`, on ``records``) and ``energy_verdicts``
(:func:`spikemax_bench.verdicts.energy_verdicts`, on both).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..render import results_markdown
from ..store import atomic_write_text
from ..sweep import Candidate
from ..verdicts import energy_verdicts, verdicts
from .csv_files import csv_text
from .plots import write_plots

__all__ = ["READABLE_SCHEMA_VERSIONS", "SCHEMA_VERSION", "results_document", "write_derived"]

# 3: per seed ``early_exit`` (the calibrated rules and their test measures) and its summary; provenance.world_size.
# 4: per seed ``per_decision`` and its summary; ``activity_penalty`` per record, ``activity_penalty_records``,
#    ``energy_verdicts``.
SCHEMA_VERSION = 4
# The versions this code renders: a schema-3 run shows "not measured" where the schema-4 measures would go.
READABLE_SCHEMA_VERSIONS = (3, 4)


def write_derived(document: dict[str, Any], out_dir: Path) -> Iterator[Path]:
    """Write results.csv, results.md and the plots from ``document`` into ``out_dir``, each atomically.

    Yields each path once it is written (a generator, so that an interruption still tells what was written).
    """
    path = out_dir / "results.csv"
    atomic_write_text(path, csv_text(document))
    yield path
    path = out_dir / "results.md"
    atomic_write_text(path, results_markdown(document))
    yield path
    yield from write_plots(document, out_dir)


def results_document(
    *,
    config: dict[str, Any],
    dataset: Any,
    records: list[dict[str, Any]],
    grid: dict[str, list[Candidate]],
    provenance: dict[str, Any],
) -> dict[str, Any]:
    """The content of results.json (see the module docstring); ``dataset`` is the first seed's SpikeDataset."""
    first_penalty = records[0]["activity_penalty"] if records else 0.0
    primary = [record for record in records if record["activity_penalty"] == first_penalty]
    quick = bool(config.get("quick"))
    return {
        "schema_version": SCHEMA_VERSION,
        "provenance": provenance,
        "config": config,
        "dataset": {
            "name": dataset.name,
            "kind": dataset.kind,
            "description": dataset.description,
            "input_shape": list(dataset.input_shape),
            "num_classes": dataset.num_classes,
            "class_names": list(dataset.class_names),
            "time_steps": dataset.time_steps,
            "sizes": {split: len(getattr(dataset, split)) for split in ("train", "validation", "test")},
        },
        "candidates": {
            loss: [{"hyper_parameters": c.hyper_parameters, "learning_rate": c.learning_rate} for c in candidates]
            for loss, candidates in grid.items()
        },
        "records": primary,
        "activity_penalty_records": [record for record in records if record["activity_penalty"] != first_penalty],
        "verdicts": verdicts(primary, quick=quick),
        "energy_verdicts": energy_verdicts(records, quick=quick),
    }
