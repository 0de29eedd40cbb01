"""Griffe extension for the API pages: reads our reST-flavoured Google docstrings as Markdown.

The docstrings are written for readers of the source (and ``help()``), in the style PyTorch uses: Sphinx roles
(``:func:`spikemax_g```), reST literal blocks (``Example::``) and, here and there, one ``Args:`` entry for two
parameters (``true_rate, false_rate: ...``). mkdocstrings renders Markdown, so before griffe parses a docstring
this extension rewrites, without touching the source:

* a role whose target griffe can resolve -> a cross-reference to that object's API entry; a ``torch.`` target ->
  a link to the PyTorch documentation; anything else -> inline code;
* ``Text::`` + an indented block -> ``Text:`` + a fenced Python block;
* ``a, b: description`` in ``Args:`` -> one entry per name; a sentence in ``Args:`` that documents no parameter
  (``Every other argument is as in spikemax_g``) -> a paragraph after the section.

Loaded by ``mkdocs.yml`` (``extensions: [docs/griffe_docstrings.py]``).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|obj|exc):`(?P<tilde>~?)(?P<target>[\w.]+)`")
_PARAMETERS_TITLE = re.compile(r"^(?P<indent>\s*)(?:Args|Arguments|Parameters|Params):\s*$")
_ITEM = re.compile(r"^(?P<names>[\w*]+(?:\s*,\s*[\w*]+)*)\s*(?:\([^)]*\))?:(?:\s|$)")
_PYTORCH_DOCS = "https://pytorch.org/docs/stable/generated/{}.html"


def _indent_of(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _resolve(obj: griffe.Object, target: str, loader: griffe.GriffeLoader) -> str | None:
    """Canonical path of ``target`` as seen from ``obj`` (relative or dotted), or None if griffe does not know it."""
    candidates = []
    try:
        candidates.append(obj.resolve(target))
    except (griffe.NameResolutionError, ValueError, KeyError):
        pass
    candidates.append(target)
    for path in candidates:
        try:
            found = loader.modules_collection[path]
        except (KeyError, ValueError, griffe.AliasResolutionError, griffe.CyclicAliasError):
            continue
        try:
            return found.final_target.path if found.is_alias else found.path
        except (griffe.AliasResolutionError, griffe.CyclicAliasError):
            continue
    return None


def _replace_roles(text: str, obj: griffe.Object, loader: griffe.GriffeLoader) -> str:
    def replace(match: re.Match) -> str:
        target = match["target"]
        shown = target.rsplit(".", 1)[-1] if match["tilde"] else target
        path = _resolve(obj, target, loader)
        if path is not None:
            return f"[`{shown}`][{path}]"
        if target.startswith("torch."):
            return f"[`{shown}`]({_PYTORCH_DOCS.format(target)})"
        return f"`{shown}`"

    return _ROLE.sub(replace, text)


def _fence_literal_blocks(lines: list[str]) -> list[str]:
    """``Text::`` followed by a blank line and an indented block -> ``Text:`` and a fenced code block."""
    result: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if not line.rstrip().endswith("::") or index + 2 >= len(lines) or lines[index + 1].strip():
            result.append(line)
            index += 1
            continue
        base = _indent_of(line)
        block_end = index + 2
        while block_end < len(lines) and (not lines[block_end].strip() or _indent_of(lines[block_end]) > base):
            block_end += 1
        block = lines[index + 2 : block_end]
        while block and not block[-1].strip():
            block.pop()
        if not block:
            result.append(line)
            index += 1
            continue
        dedent = min(_indent_of(code) for code in block if code.strip())
        prefix = " " * base
        result.append(line.rstrip()[:-1])  # "Example::" -> "Example:"
        result.append("")
        result.append(prefix + "```python")
        result.extend(prefix + code[dedent:] if code.strip() else "" for code in block)
        result.append(prefix + "```")
        index = block_end
    return result


def _split_parameter_items(lines: list[str]) -> list[str]:
    """In ``Args:`` sections: one entry per name, and sentences that name no parameter moved below the section."""
    result: list[str] = []
    index = 0
    while index < len(lines):
        title = _PARAMETERS_TITLE.match(lines[index])
        result.append(lines[index])
        index += 1
        if not title:
            continue
        section_indent = len(title["indent"])
        items: list[list[str]] = []
        while index < len(lines) and (not lines[index].strip() or _indent_of(lines[index]) > section_indent):
            line = lines[index]
            if line.strip() and (not items or _indent_of(line) <= _indent_of(items[-1][0])):
                items.append([line])
            elif items:
                items[-1].append(line)
            index += 1
        notes: list[str] = []
        for item in items:
            while item and not item[-1].strip():
                item.pop()
            head = item[0]
            item_indent = " " * _indent_of(head)
            match = _ITEM.match(head.strip())
            if match is None:
                notes.append(" ".join(part.strip() for part in item))
                continue
            names = [name.strip() for name in match["names"].split(",")]
            rest = head.strip()[match.end("names") :]
            for name in names:
                result.append(f"{item_indent}{name}{rest}")
                result.extend(item[1:])
        if notes:
            result.append("")
            result.extend(" " * section_indent + note for note in notes)
        result.append("")
    return result


class MarkdownDocstrings(griffe.Extension):
    """Rewrites every docstring of a loaded package as described in the module docstring."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        pending: list[griffe.Object] = [pkg]
        while pending:
            obj = pending.pop()
            pending.extend(member for member in obj.members.values() if not member.is_alias)
            if obj.docstring is not None:
                text = _replace_roles(obj.docstring.value, obj, loader)
                lines = _split_parameter_items(_fence_literal_blocks(text.split("\n")))
                obj.docstring.value = "\n".join(lines).rstrip("\n")
