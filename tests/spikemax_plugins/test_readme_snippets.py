"""The README's core examples run (no host framework needed): 'What it computes' and the streaming example."""

from __future__ import annotations

import re

from ..readme_support import run_snippet


def test_readme_core_example_runs():
    printed = run_snippet("## What it computes")
    accuracy, decision_steps = re.fullmatch(r"tensor\(([0-9.]+)\) tensor\(\[([-0-9, ]+)\]\)\n", printed).groups()
    assert 0.0 <= float(accuracy) <= 1.0
    assert all(-1 <= int(step) <= 99 for step in decision_steps.split(","))


def test_readme_streaming_example_runs():
    printed = run_snippet("## Streaming and distributed evaluation")
    values = re.fullmatch(r"tensor\(([0-9.]+)\) tensor\(([0-9.]+)\) tensor\(([0-9.]+|nan), dtype=torch.float64\)\n",
                          printed)
    assert values, printed
    assert 0.0 <= float(values.group(1)) <= 1.0 and float(values.group(1)) == float(values.group(2))
