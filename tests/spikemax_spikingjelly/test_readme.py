"""The README's SpikingJelly example runs, trains and exits early."""

from __future__ import annotations

import pytest

from ..readme_support import assert_early_exit_saved_steps, printed_accuracy, run_snippet

pytest.importorskip("spikingjelly.activation_based", reason="needs SpikingJelly")


@pytest.mark.slow
def test_readme_spikingjelly_section_trains_and_exits_early():
    printed = run_snippet("## Using with SpikingJelly")
    assert printed_accuracy(printed) > 0.8, printed
    assert_early_exit_saved_steps(printed)
