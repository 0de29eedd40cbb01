"""Every public name of spikemax_plugins and of each adapter (spikemax_snntorch, ...) appears in docs/api/*.md.

A name counts as documented when a ``::: module`` directive renders it (the module's whole public API, or the
names listed under ``members:``), when a directive names it directly (``::: module.name``), or when the page
mentions its dotted path.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path
from types import ModuleType

import pytest

API_PAGES = sorted((Path(__file__).resolve().parents[2] / "docs" / "api").glob("*.md"))
DIRECTIVE = re.compile(r"^:::\s*(?P<path>[\w.]+)\s*$((?:\n(?:[ \t]+.*|\s*))*)", re.MULTILINE)
MEMBERS_OFF = re.compile(r"^\s+members:\s*(false|\[\s*\])\s*$", re.MULTILINE)
MEMBERS_LIST = re.compile(r"^\s+members:\s*\[(?P<names>[^\]]*)\]", re.MULTILINE)


def public_names(module: ModuleType) -> set[str]:
    """``__all__`` plus every public function or class defined in the module itself."""
    names = set(getattr(module, "__all__", ()))
    for name, value in vars(module).items():
        defined_here = getattr(value, "__module__", None) == module.__name__
        if not name.startswith("_") and defined_here and (inspect.isfunction(value) or inspect.isclass(value)):
            names.add(name)
    return names


def canonical_paths(module: ModuleType, name: str) -> set[str]:
    """Dotted paths under which ``module.name`` may be documented: where it is reached and where it is defined."""
    value = getattr(module, name)
    paths = {f"{module.__name__}.{name}"}
    if isinstance(value, ModuleType):
        paths.add(value.__name__)
    elif getattr(value, "__module__", None):
        paths.add(f"{value.__module__}.{getattr(value, '__qualname__', name)}")
    return paths


def documented_paths() -> tuple[set[str], str]:
    """Paths rendered by the ``:::`` directives of the API pages, and the pages' text."""
    text = "\n".join(page.read_text(encoding="utf-8") for page in API_PAGES)
    rendered: set[str] = set()
    for match in DIRECTIVE.finditer(text):
        path, options = match["path"], match.group(2)
        rendered.add(path)
        try:
            target = importlib.import_module(path)
        except ModuleNotFoundError:
            continue  # a directive for a single object: its path is enough
        if MEMBERS_OFF.search(options):
            continue
        listed = MEMBERS_LIST.search(options)
        names = (
            {name.strip(" '\"") for name in listed["names"].split(",")} if listed else public_names(target)
        )
        for name in names:
            rendered |= canonical_paths(target, name)
    return rendered, text


PACKAGES = [
    "spikemax_plugins", "spikemax_snntorch", "spikemax_norse", "spikemax_spikingjelly", "spikemax_sinabs",
    "spikemax_neurobench",
]


def modules_to_check(package: str) -> list[ModuleType]:
    """The package and every submodule it exports publicly (spikemax_plugins.functional, ...)."""
    module = importlib.import_module(package)
    exported = [getattr(module, name) for name in public_names(module)]
    return [module, *(value for value in exported if isinstance(value, ModuleType))]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_is_on_an_api_page(package):
    if package != "spikemax_plugins":
        pytest.importorskip(package.removeprefix("spikemax_"))
    rendered, text = documented_paths()
    missing = []
    for module in modules_to_check(package):
        for name in sorted(public_names(module)):
            paths = canonical_paths(module, name)
            if not paths & rendered and not any(path in text for path in paths):
                missing.append(f"{module.__name__}.{name}")
    assert not missing, f"public names missing from docs/api/*.md: {missing}"


def test_the_check_sees_the_pages():
    rendered, _ = documented_paths()
    assert API_PAGES, "no docs/api/*.md pages"
    assert "spikemax_plugins.functional.spikemax_g" in rendered
    assert "spikemax_plugins.spikemax_g" in rendered or "spikemax_plugins.functional.spikemax_g" in rendered


@pytest.mark.slow
def test_every_public_name_has_an_anchor_in_the_built_site(site):
    """The rendered site, not only the Markdown: mkdocstrings gives every object it renders an id = its path."""
    html = "\n".join(page.read_text(encoding="utf-8") for page in (site / "api").rglob("*.html"))
    anchors = set(re.findall(r'id="([\w.]+)"', html))
    missing = []
    for package in PACKAGES:
        for module in modules_to_check(package):
            for name in sorted(public_names(module)):
                if not canonical_paths(module, name) & anchors:
                    missing.append(f"{module.__name__}.{name}")
    assert not missing, f"public names without an entry in the built API pages: {missing}"
