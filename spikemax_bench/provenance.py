"""Where a benchmark run's numbers come from: source commit, package versions, command, machine.

Nothing here may fail a run: a missing ``git``, a source tree outside a checkout, an unreadable
``/proc/cpuinfo`` or a missing package all give ``"unknown"`` or ``None`` instead of an error.
"""

from __future__ import annotations

import hashlib
import importlib.util
import platform
import shlex
import subprocess
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "PACKAGES",
    "SOURCE_PACKAGES",
    "cpu_name",
    "git_commit",
    "package_versions",
    "provenance",
    "source_digest",
    "source_root",
]

# Distributions whose versions decide the numbers (or the files) of a run.
PACKAGES = ("torch", "snntorch", "norse", "spikemax-plugins", "numpy")
# Import packages whose code decides the numbers: the core, the bench and the two adapters.
SOURCE_PACKAGES = ("spikemax_plugins", "spikemax_bench", "spikemax_snntorch", "spikemax_norse")
_GIT_TIMEOUT_SECONDS = 10


def source_root() -> Path:
    """The folder that holds the ``spikemax_bench`` package (a checkout's root, or site-packages)."""
    return Path(__file__).resolve().parents[1]


def _git(root: Path, *arguments: str) -> str | None:
    """Output of ``git -C root ...`` stripped, or None when git is missing, fails or hangs."""
    try:
        completed = subprocess.run(
            ["git", "-C", str(root), *arguments],
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return completed.stdout.strip() if completed.returncode == 0 else None


def git_commit(root: Path | None = None) -> dict[str, Any]:
    """The git commit of the source tree at ``root`` (default :func:`source_root`).

    Returns ``{"commit": <40 hex digits> or "unknown", "dirty": bool or None}``; ``dirty`` is True when tracked
    files differ from that commit. "unknown" when git is missing, or ``root`` is not the top of a checkout (an
    installed package inside some other repository's virtual environment must not report that repository).
    """
    root = (root or source_root()).resolve()
    top = _git(root, "rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != root:
        return {"commit": "unknown", "dirty": None}
    commit = _git(root, "rev-parse", "HEAD")
    if commit is None:
        return {"commit": "unknown", "dirty": None}
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def package_versions(packages: Sequence[str] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution in ``packages``, None when it is not installed."""
    versions: dict[str, str | None] = {}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def source_digest(packages: Sequence[str] = SOURCE_PACKAGES) -> str:
    """SHA-256 (hex) over the relative path and bytes of every ``.py`` file of ``packages``, in sorted order.

    Unlike the commit it sees uncommitted edits; ``--resume`` refuses to mix cells computed by different code.
    A package that cannot be found contributes its name only.
    """
    digest = hashlib.sha256()
    for package in packages:
        digest.update(package.encode() + b"\0")
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        folder = Path(next(iter(spec.submodule_search_locations)))
        for path in sorted(folder.rglob("*.py")):
            digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()


def cpu_name(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The CPU's model name (from ``cpuinfo`` on Linux, else ``platform.processor()``), or "unknown"."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as stream:
            for line in stream:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def gpu_name() -> str | None:
    """The name of the current CUDA device, or None when torch sees none."""
    try:
        return torch.cuda.get_device_name() if torch.cuda.is_available() else None
    except Exception:  # a broken driver must not fail the run; the record just has no GPU name
        return None


def provenance(
    *,
    argv: Sequence[str],
    started: float,
    wall_seconds: float,
    world_size: int = 1,
    resumed_cells: int = 0,
    digest: str | None = None,
    packages: dict[str, str | None] | None = None,
) -> dict[str, Any]:
    """The ``provenance`` block of results.json.

    Args:
        argv: the command line as typed, program name first.
        started: the run's start, seconds since the epoch (``time.time()``).
        wall_seconds: wall-clock seconds of this invocation.
        world_size: processes that computed the run (1; a multi-process mode sets it).
        resumed_cells: cells read back from an interrupted run instead of computed (``--resume``).
        digest, packages: :func:`source_digest` and :func:`package_versions` as the run already took them (for
            its cells' key), so that the record states what the cells were made with; computed when omitted.

    Returns a JSON-ready dict: ``git`` (commit, dirty), ``source_digest``, ``packages`` (versions), ``python``,
    ``platform``, ``argv``, ``command`` (one shell-quoted string), ``started`` (UTC, ISO 8601),
    ``wall_seconds``, ``cpu``, ``gpu``, ``torch_threads``, ``world_size``, ``resumed_cells``.
    """
    return {
        "git": git_commit(),
        "source_digest": source_digest() if digest is None else digest,
        "packages": package_versions() if packages is None else packages,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "argv": list(argv),
        "command": shlex.join(argv),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "wall_seconds": wall_seconds,
        "cpu": cpu_name(),
        "gpu": gpu_name(),
        "torch_threads": torch.get_num_threads(),
        "world_size": world_size,
        "resumed_cells": resumed_cells,
    }
