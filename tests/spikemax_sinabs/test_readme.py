"""The README's sinabs example runs, trains and exits early."""

from __future__ import annotations

import pytest

from ..readme_support import assert_early_exit_saved_steps, printed_accuracy, run_snippet

pytest.importorskip("sinabs", reason="needs sinabs")


@pytest.mark.slow
def test_readme_sinabs_section_trains_and_exits_early():
    printed = run_snippet("## Using with sinabs")
    assert printed_accuracy(printed) > 0.8, printed
    assert_early_exit_saved_steps(printed)
