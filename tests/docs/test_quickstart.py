"""The quick-start snippets on the home page (docs/quickstart/*.py) run and give a finite loss and gradient."""

from __future__ import annotations

import math
import runpy
from pathlib import Path

import pytest

QUICKSTART = Path(__file__).resolve().parents[2] / "docs" / "quickstart"


@pytest.mark.parametrize(
    "script, host",
    [("quickstart_core.py", None), ("quickstart_snntorch.py", "snntorch"), ("quickstart_norse.py", "norse")],
)
def test_quickstart_runs(script, host):
    if host is not None:
        pytest.importorskip(host)
    namespace = runpy.run_path(str(QUICKSTART / script), run_name="__main__")
    assert math.isfinite(namespace["loss"].item())
    leaf = namespace.get("spikes", namespace.get("spk_out"))
    if leaf is not None:
        assert leaf.grad is not None and leaf.grad.isfinite().all()
