"""The README's Norse example runs and trains: the first ```python block under its heading."""

from __future__ import annotations

from ..readme_support import assert_early_exit_saved_steps, printed_accuracy, run_snippet


def test_readme_norse_section_trains_and_exits_early():
    printed = run_snippet("## Using with Norse")
    assert printed_accuracy(printed) > 0.8, printed
    assert_early_exit_saved_steps(printed)
