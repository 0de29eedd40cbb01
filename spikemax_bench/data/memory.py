"""How much memory building a data set takes, estimated before anything is built, and how much the machine
has available.

The estimates follow the builders' code (peaks, not just what stays resident):

- emulated sets (``digits-dvs``, ``mnist-saccades``): the frames, ``uint8 [N, T, 2, H, W]``, are held twice
  for a moment (the emulated chunks while they are joined, or the unpacked cache while it is split three
  ways), plus the bit-packed copy (an eighth) and the source images.
- rate-coded sets: each split's spikes are drawn into their own array, so the frames ``[N, T, F]`` are held
  once, plus one block of float32 draws and the features (float64: as read, scaled, one split's rows).
- recorded sets: frames are made one recording at a time, so the estimate is one sample's conversion
  (tonic's int16 counts, a bool copy and the float32 frames: 7 bytes a cell). Batching is the training
  loop's, and is not counted for any set.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from . import rate_coded, saccades, sources
from .base import quick_sample_count

_MEMINFO = Path("/proc/meminfo")
_CGROUP = Path("/sys/fs/cgroup")  # cgroup v2: a container's own limit, which /proc/meminfo does not show
# Bytes per frame cell while one recording is converted: int16 counts + bool + float32.
_RECORDED_BYTES_PER_CELL = 2 + 1 + 4


def available_memory_bytes() -> int | None:
    """Bytes of memory a new allocation can take without swapping, or None where that cannot be read.

    Linux: ``MemAvailable`` of ``/proc/meminfo``, lowered to what the cgroup (container) limit leaves
    (``memory.max − memory.current``) when one is set. Elsewhere: the free physical pages
    (``os.sysconf("SC_AVPHYS_PAGES")``), which undercounts reclaimable caches.
    """
    available = _meminfo_available()
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):  # no sysconf, or not that name on this system
            return None
    limit_left = _cgroup_memory_left()
    return available if limit_left is None else min(available, limit_left)


def _meminfo_available() -> int | None:
    try:
        for line in _MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # reported in kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_memory_left() -> int | None:
    try:
        limit = (_CGROUP / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(0, int(limit) - int((_CGROUP / "memory.current").read_text().strip()))
    except (OSError, ValueError):
        return None


def estimate_bytes(name: str, *, time_steps: int, quick: bool) -> int:
    """Peak bytes of memory building data set ``name`` with T = ``time_steps`` takes (see the module
    docstring). Reads no data; ``name`` must be one of the known data sets."""
    if name in saccades.EMULATED:
        spec = saccades.EMULATED[name]
        samples = quick_sample_count(spec.num_samples) if quick else spec.num_samples
        frame_bytes = samples * time_steps * math.prod(spec.input_shape)
        source_bytes = spec.num_samples * spec.emulation.digit_size**2 * 8 * 2  # float64 images, twice
        return 2 * frame_bytes + frame_bytes // 8 + source_bytes
    if name in rate_coded.TABLES:
        table = rate_coded.TABLES[name]
        samples = quick_sample_count(table.num_samples) if quick else table.num_samples
        frame_bytes = samples * time_steps * table.num_features
        # One block of float32 draws: at most _DRAW_CHUNK_CELLS cells, or one sample's if that is more.
        block_cells = max(rate_coded._DRAW_CHUNK_CELLS, time_steps * table.num_features)
        # The features, float64: as read, scaled, and one split's rows of the scaled ones.
        feature_bytes = 3 * table.num_samples * table.num_features * 8
        return frame_bytes + 4 * min(block_cells, frame_bytes) + feature_bytes
    if name in sources.SOURCES:
        return time_steps * math.prod(sources.SOURCES[name].input_shape) * _RECORDED_BYTES_PER_CELL
    raise ValueError(f"no memory estimate for data set {name!r}")


def format_bytes(count: float) -> str:
    """``count`` bytes in binary units, 3 significant digits: ``'11.5 GiB'``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.3g} {unit}"
        count /= 1024
    raise AssertionError("unreachable")
