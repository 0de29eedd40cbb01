"""docs/errors.md quotes every error, warning and edge-case result verbatim: re-trigger each and look it up."""

from __future__ import annotations

from pathlib import Path

import pytest

from . import error_catalogue as catalogue

PAGE = (Path(__file__).resolve().parents[2] / "docs" / "errors.md").read_text(encoding="utf-8")
SECTIONS_NEEDING_HOSTS = {"Adapters"}

ERROR_CASES = [
    pytest.param(section, description, action, id=description)
    for section, cases in catalogue.ERROR_SECTIONS.items()
    for description, action in cases
]


def _require_hosts() -> None:
    pytest.importorskip("snntorch")
    pytest.importorskip("norse")


@pytest.mark.parametrize("section, description, action", ERROR_CASES)
def test_error_message_is_on_the_page(section, description, action):
    if section in SECTIONS_NEEDING_HOSTS:
        _require_hosts()
    error = catalogue.raised(action)
    row = f"| {description} | `{type(error).__name__}` | `{error}` |"
    assert row in PAGE, f"docs/errors.md lacks the row (run python -m tests.docs.error_catalogue):\n{row}"


@pytest.mark.parametrize("description, action", [pytest.param(*case, id=case[0]) for case in catalogue.WARNING_CASES])
def test_warning_message_is_on_the_page(description, action):
    _require_hosts()
    warning = catalogue.warned(action)
    row = f"| {description} | `{type(warning).__name__}` | `{warning}` |"
    assert row in PAGE, f"docs/errors.md lacks the row (run python -m tests.docs.error_catalogue):\n{row}"


def test_edge_case_results_are_on_the_page():
    for line in catalogue.edge_markdown().splitlines():
        assert line in PAGE, f"docs/errors.md lacks the line (run python -m tests.docs.error_catalogue):\n{line}"
