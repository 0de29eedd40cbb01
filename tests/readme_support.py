"""Running the README's examples: the first ```python block under a heading, exec'd as a script, and the numbers
the adapter examples print (used by each package's test_readme_snippets)."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from .adapter_support import one_intra_op_thread

README = Path(__file__).resolve().parents[1] / "README.md"


def first_python_block(heading: str) -> str:
    """The first ```python block between ``heading`` and the next heading of the same or a higher level."""
    lines = [line.rstrip() for line in README.read_text(encoding="utf-8").splitlines()]
    if heading not in lines:
        pytest.fail(f"{README} has no section {heading!r} with a ```python block")
    section_end = re.compile(rf"#{{1,{len(heading.split(' ')[0])}}} ")
    block: list[str] | None = None  # the lines of the python block, once its opening fence is read
    in_other_fence = False  # inside a fence, "# ..." is a comment, not a heading
    for line in lines[lines.index(heading) + 1 :]:
        if block is not None:
            if line.strip().startswith("```"):
                return "\n".join(block)
            block.append(line)
        elif line.strip() == "```python" and not in_other_fence:
            block = []
        elif line.strip().startswith("```"):
            in_other_fence = not in_other_fence
        elif section_end.match(line) and not in_other_fence:
            break
    pytest.fail(f"the section {heading!r} of {README} has no complete ```python block")


def run_snippet(heading: str) -> str:
    """Exec the block as a script; returns what it printed."""
    code = compile(first_python_block(heading), f"{README.name}: {heading}", "exec")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), one_intra_op_thread():
        exec(code, {"__name__": "__main__"})
    return printed.getvalue()


def printed_accuracy(printed: str) -> float:
    match = re.search(r"test accuracy ([0-9.]+)", printed)
    assert match, f"the example must print 'test accuracy <value>', it printed:\n{printed}"
    return float(match.group(1))


def assert_early_exit_saved_steps(printed: str) -> None:
    """The example's early exit keeps the accuracy (within 0.05, the held-out noise of 256 test samples at the
    calibrated 0.01) while simulating fewer steps per sample than the full window."""
    match = re.search(r"early-exit accuracy ([0-9.]+) using ([0-9.]+) of the time steps", printed)
    assert match, f"the example must print its early-exit result, it printed:\n{printed}"
    early_accuracy, fraction = float(match.group(1)), float(match.group(2))
    assert early_accuracy >= printed_accuracy(printed) - 0.05
    assert fraction < 0.9
