"""benchmarks/device_check.sh, the GPU check, as far as a machine without a GPU can check it: its syntax, and that it
stops at once, saying why, with no results file, when torch sees no CUDA device."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "device_check.sh"
needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


@needs_bash
def test_the_script_parses():
    result = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


@needs_bash
@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present: the script would run the whole check")
def test_without_a_cuda_device_it_stops_with_a_clear_message(tmp_path):
    results = tmp_path / "results.json"
    result = subprocess.run(["bash", str(SCRIPT), str(results)], capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable})
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "device_check: no CUDA device" in result.stderr
    assert "torch.cuda.is_available() is False" in result.stderr and "nothing was run" in result.stderr
    assert not results.exists()


@needs_bash
def test_an_unknown_device_is_refused(tmp_path):
    result = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=30,
                            env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "DEVICE_CHECK_DEVICE": "gpu"})
    assert result.returncode == 2
    assert "DEVICE_CHECK_DEVICE must be cuda or cpu, got 'gpu'" in result.stderr
