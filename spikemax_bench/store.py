"""The output folder of a benchmark run: checks before any training, finished cells, atomic result files.

A run is made of *cells*: one training of one framework x loss x candidate x seed, and one evaluation of a
trained network. :class:`RunStore` keeps every finished cell in ``OUT/cells/`` (a JSON record, and for a
training whose network is still to be evaluated its weights), so that ``--resume`` continues an interrupted run
and reaches the numbers of an uninterrupted one. :class:`MemoryStore` keeps them in memory (library use, tests).

Every file is written atomically (a temporary file in the same folder, then ``os.replace``): a reader, or a run
stopped by Ctrl-C, never sees half a file. :meth:`RunStore.publish` writes the results in an order that never
leaves a new ``results.json`` beside files derived from an older one (see there).

Only one process writes: a store built with ``writer=False`` reads cells but writes nothing. (A multi-process
run gives its ranks other than 0 no store of their own at all: they see rank 0's through
:class:`spikemax_bench.distributed.SharedStore`.)
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import torch

__all__ = [
    "CELLS_FOLDER",
    "DERIVED_FILES",
    "RESULTS_FILE",
    "RUN_FILE",
    "CellStore",
    "MemoryStore",
    "OutputError",
    "RunStore",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "json_ready",
]

RESULTS_FILE = "results.json"
# Written after results.json, from it; removed before a new results.json replaces an old one.
DERIVED_FILES = (
    "results.csv",
    "results.md",
    "accuracy_vs_time.png",
    "spikes_per_sample.png",
    "training_curves.png",
    "energy.png",
    "early_exit.png",
)
CELLS_FOLDER = "cells"
RUN_FILE = "run.json"  # in CELLS_FOLDER: what the cells were computed with, checked by --resume


class OutputError(Exception):
    """The output folder cannot take this run; the message names the option, what was expected and found."""


def json_ready(value: Any) -> Any:
    """``value`` with NaN and infinities as None (JSON has neither) and tuples as lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    return value


def atomic_write(path: Path, write: Callable[[io.BufferedWriter], None], *, temporary_prefix: str = "") -> None:
    """Let ``write`` fill a temporary file next to ``path`` (named ``temporary_prefix`` or ``.<name>.``, then
    random characters and ``.tmp``), flushed to disk, then renamed to ``path``: a reader sees the old file or
    the new one, never half of one. Any exception, KeyboardInterrupt included, removes the temporary file and
    is re-raised."""
    prefix = temporary_prefix or f".{path.name}."
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o644)  # mkstemp makes the file private; results are meant to be shared
        os.replace(temporary, path)
    except BaseException:  # KeyboardInterrupt included: never leave the temporary file behind
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one step (temporary file in the same folder, then ``os.replace``)."""
    atomic_write(Path(path), lambda stream: stream.write(data))


def atomic_write_text(path: str | Path, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) in one step."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _dump_json(value: Any) -> str:
    return json.dumps(json_ready(value), indent=2, allow_nan=False) + "\n"


class CellStore(Protocol):
    """Where :func:`spikemax_bench.run.run_benchmark` keeps finished cells."""

    def get(self, key: str) -> dict[str, Any] | None: ...

    def put(self, key: str, record: dict[str, Any]) -> None: ...

    def has_weights(self, key: str) -> bool: ...

    def save_weights(self, key: str, state: Mapping[str, torch.Tensor]) -> None: ...

    def load_weights(self, key: str) -> dict[str, torch.Tensor]: ...

    def drop_weights(self, key: str) -> None: ...


class MemoryStore:
    """Cells kept in memory for one call of ``run_benchmark`` (nothing to resume)."""

    def __init__(self) -> None:
        self._records: dict[str, dict[str, Any]] = {}
        self._weights: dict[str, dict[str, torch.Tensor]] = {}

    def get(self, key: str) -> dict[str, Any] | None:
        return self._records.get(key)

    def put(self, key: str, record: dict[str, Any]) -> None:
        # Through JSON, as the disk store does, so that both give the same records.
        self._records[key] = json.loads(_dump_json(record))

    def has_weights(self, key: str) -> bool:
        return key in self._weights

    def save_weights(self, key: str, state: Mapping[str, torch.Tensor]) -> None:
        self._weights[key] = {name: value.detach().cpu().clone() for name, value in state.items()}

    def load_weights(self, key: str) -> dict[str, torch.Tensor]:
        return self._weights[key]

    def drop_weights(self, key: str) -> None:
        self._weights.pop(key, None)


def _first_file_ancestor(path: Path) -> Path | None:
    """The nearest existing ancestor of ``path`` (itself excluded) that is not a folder, if any."""
    for parent in path.parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def _differences(stored: Any, current: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted path, stored, current) of every leaf that differs between two JSON-like values."""
    if isinstance(stored, dict) and isinstance(current, dict):
        found = []
        for key in list(dict.fromkeys([*stored, *current])):
            found += _differences(stored.get(key), current.get(key), f"{prefix}{key}.")
        return found
    return [] if stored == current else [(prefix.rstrip("."), stored, current)]


class RunStore:
    """The output folder ``out`` of one run, and the finished cells under ``out/cells``.

    Build it with :meth:`prepare`, which does every check that can be done before training and writes nothing but
    the folder itself; call :meth:`begin` once the run is sure to start.
    """

    def __init__(self, out: str | Path, *, writer: bool = True) -> None:
        self.out = Path(out)
        self.cells = self.out / CELLS_FOLDER
        self.writer = writer
        self._pending_key: dict[str, Any] | None = None  # set by prepare() for a new run, written by begin()

    # -------------------------------------------------------------------------------------------- checks

    @classmethod
    def prepare(
        cls,
        out: str | Path,
        *,
        run_key: dict[str, Any],
        overwrite: bool = False,
        resume: bool = False,
        writer: bool = True,
        describe: Callable[[str], str] = lambda path: path,
    ) -> RunStore:
        """Check ``out`` and set it up for a run; raises :class:`OutputError` with the reason otherwise.

        Args:
            run_key: everything the cells' numbers depend on (configuration, versions, source digest); stored in
                ``cells/run.json``, and with ``resume`` compared with the stored one.
            overwrite: replace the results already in ``out`` (they are kept until the new ones are written).
            resume: continue the interrupted run whose cells are in ``out``.
            writer: False for a process that must not write (it checks nothing that needs writing).
            describe: turns a dotted path of ``run_key`` (e.g. ``"config.epochs"``) into the words an error
                message uses (e.g. ``"--epochs"``).

        Checks, in order: ``out`` is not a file and does not sit under one; it can be created and written (it is
        created, and a probe file written and removed); it holds no results unless ``overwrite`` or ``resume``;
        with ``resume`` it holds the cells of an interrupted run made with the same ``run_key``.
        """
        store = cls(out, writer=writer)
        out = store.out
        if overwrite and resume:
            raise OutputError("--overwrite and --resume exclude each other: --resume keeps the finished cells")
        if out.exists() and not out.is_dir():
            raise OutputError(f"--out must be a folder, but {out} is an existing file")
        blocking = _first_file_ancestor(out)
        if blocking is not None:
            raise OutputError(f"--out {out} cannot be a folder: {blocking} is a file, not a folder")
        if writer:
            try:
                out.mkdir(parents=True, exist_ok=True)
                handle, probe = tempfile.mkstemp(dir=out, prefix=".spikemax-bench-probe.")
                os.close(handle)
                os.unlink(probe)
            except OSError as error:
                raise OutputError(
                    f"--out {out} must be a folder this user can write, but writing there failed: "
                    f"{error.strerror or error}"
                ) from None
        existing = store.existing_results()
        run_file = store.cells / RUN_FILE
        if resume:
            if not run_file.is_file():
                if (out / RESULTS_FILE).is_file():
                    raise OutputError(
                        f"--resume: {out} holds a finished run ({RESULTS_FILE}) and no interrupted one; "
                        "pass --overwrite instead to replace it"
                    )
                raise OutputError(f"--resume: {out} holds no interrupted run ({CELLS_FOLDER}/{RUN_FILE} is missing)")
            try:
                stored_key = json.loads(run_file.read_text())
            except (OSError, ValueError) as error:
                raise OutputError(f"--resume: cannot read {run_file} ({error}); start again with --overwrite") from None
            differences = _differences(stored_key, json_ready(run_key))
            if differences:
                lines = "; ".join(
                    f"{describe(path)}: the interrupted run used {stored!r}, this command {current!r}"
                    for path, stored, current in differences
                )
                raise OutputError(
                    f"--resume needs the configuration of the interrupted run in {out}, but {lines}. "
                    "Repeat the interrupted command with --resume, or pass --overwrite to start again"
                )
            return store
        if existing and not overwrite:
            raise OutputError(
                f"--out {out} already holds results ({', '.join(existing)}); pass --overwrite to replace them, "
                "--resume to continue an interrupted run, or choose another --out"
            )
        store._pending_key = run_key
        return store

    def begin(self) -> None:
        """Start storing cells (call once every check before training has passed).

        A new run (not a resumed one) removes the cells of an older interrupted run, which would otherwise be read
        back as its own, and records its ``run_key``. Results already in ``out`` stay until :meth:`publish`
        replaces them.
        """
        if self._pending_key is None or not self.writer:
            return
        shutil.rmtree(self.cells, ignore_errors=True)
        self.cells.mkdir()
        atomic_write_text(self.cells / RUN_FILE, _dump_json(self._pending_key))
        self._pending_key = None

    def existing_results(self) -> list[str]:
        """Names of the result files and the cells folder already in ``out``."""
        names = [name for name in (RESULTS_FILE, *DERIVED_FILES) if (self.out / name).exists()]
        if self.cells.exists():
            names.append(f"{CELLS_FOLDER}/")
        return names

    # --------------------------------------------------------------------------------------------- cells

    def _record_path(self, key: str) -> Path:
        return self.cells / f"{key}.json"

    def _weights_path(self, key: str) -> Path:
        return self.cells / f"{key}.pt"

    def finished_cells(self) -> int:
        """Number of cell records on disk."""
        if not self.cells.is_dir():
            return 0
        return sum(1 for path in self.cells.glob("*.json") if path.name != RUN_FILE)

    def get(self, key: str) -> dict[str, Any] | None:
        """The record of a finished cell, or None."""
        path = self._record_path(key)
        if not path.is_file():
            return None
        return json.loads(path.read_text())

    def put(self, key: str, record: dict[str, Any]) -> None:
        if self.writer:
            atomic_write_text(self._record_path(key), _dump_json(record))

    def has_weights(self, key: str) -> bool:
        return self._weights_path(key).is_file()

    def save_weights(self, key: str, state: Mapping[str, torch.Tensor]) -> None:
        if self.writer:
            buffer = io.BytesIO()
            torch.save({name: value.detach().cpu() for name, value in state.items()}, buffer)
            atomic_write_bytes(self._weights_path(key), buffer.getvalue())

    def load_weights(self, key: str) -> dict[str, torch.Tensor]:
        return torch.load(self._weights_path(key), map_location="cpu", weights_only=True)

    def drop_weights(self, key: str) -> None:
        if self.writer:
            with contextlib.suppress(FileNotFoundError):
                self._weights_path(key).unlink()

    # ------------------------------------------------------------------------------------------- results

    def publish(
        self, document: dict[str, Any], write_derived: Callable[[dict[str, Any], Path], Iterator[Path]]
    ) -> list[Path]:
        """Write ``results.json`` and the files derived from it; then drop the cells.

        Order, chosen so that an interruption at any point leaves a consistent folder: (1) remove the derived
        files of an older run; (2) replace ``results.json`` atomically; (3) write the derived files, each
        atomically (``write_derived(document, out)`` yields the paths it wrote); (4) remove ``cells/``. Stopped
        before (2), the folder holds the old ``results.json`` (with fewer of its derived files); after (2), the
        new one with some of its own derived files and never an old plot. Until (4), ``--resume`` finds every
        cell finished and just writes the results again.

        Returns the paths written (none when this store does not write).
        """
        if not self.writer:
            return []
        for name in DERIVED_FILES:
            with contextlib.suppress(FileNotFoundError):
                (self.out / name).unlink()
        results_path = self.out / RESULTS_FILE
        atomic_write_text(results_path, _dump_json(document))
        written = [results_path, *write_derived(document, self.out)]
        shutil.rmtree(self.cells, ignore_errors=True)
        return written
