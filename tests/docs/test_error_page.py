"""docs/errors.md holds exactly what the code produces: every error, warning and edge-case result, triggered again."""

from __future__ import annotations

import pytest

from . import error_catalogue as catalogue


def test_the_generated_blocks_are_current():
    pytest.importorskip("snntorch")  # the adapter rows need both hosts
    pytest.importorskip("norse")
    page = catalogue.PAGE.read_text(encoding="utf-8")
    assert "<!-- error-catalogue:errors -->" in page and "<!-- error-catalogue:edge-cases -->" in page
    rendered = catalogue.render_page(page)
    assert rendered == page, "docs/errors.md is out of date: run python -m tests.docs.error_catalogue --write"


@pytest.mark.parametrize(
    "section, description, action",
    [
        pytest.param(section, description, action, id=description)
        for section, cases in catalogue.ERROR_SECTIONS.items()
        if section != "Adapters"
        for description, action in cases
    ],
)
def test_each_host_free_error_names_what_is_wrong(section, description, action):
    """Without any host installed (tox's core env), the core's rows can still be checked one by one."""
    error = catalogue.raised(action)
    assert isinstance(error, (ValueError, TypeError, RuntimeError))
    row = f"| {description} | `{type(error).__name__}` | `{catalogue._row_text(str(error))}` |"
    assert row in catalogue.PAGE.read_text(encoding="utf-8")
