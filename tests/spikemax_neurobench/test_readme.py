"""The README's NeuroBench example runs, trains, and reports early exit through NeuroBench's Benchmark."""

from __future__ import annotations

import re

import pytest

from ..readme_support import assert_early_exit_saved_steps, printed_accuracy, run_snippet

pytest.importorskip("neurobench", reason="needs NeuroBench")


@pytest.mark.slow
def test_readme_neurobench_section_trains_and_exits_early():
    printed = run_snippet("## Using with NeuroBench")
    assert printed_accuracy(printed) > 0.8, printed
    assert_early_exit_saved_steps(printed)
    operations = re.search(r"synaptic operations per sample: (\d+) full window, (\d+) with early exit", printed)
    assert operations, printed
    assert 0 < int(operations[2]) < int(operations[1]), printed
