"""Adding an adapter's names to a host framework's namespaces, and taking them back out (used by the adapters)."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any


def _is_ours(value: object, owner: str) -> bool:
    # By module rather than identity, so that objects from before an importlib.reload still count as ours.
    return getattr(value, "__module__", None) == owner


def register(names: Mapping[ModuleType, Iterable[Any]], owner: str) -> list[str]:
    """Set each value as ``namespace.<value.__name__>`` (and in ``__all__`` if the namespace has a list).

    Idempotent; a name the host defines itself is never replaced (a warning says so). Returns the qualified
    names that were missing before.
    """
    added = []
    for namespace, values in names.items():
        exported = getattr(namespace, "__all__", None)
        for value in values:
            name, current = value.__name__, getattr(namespace, value.__name__, None)
            if current is not None and not _is_ours(current, owner):
                message = f"{namespace.__name__} already defines {name}; left as it is (ours: {owner}.{name})"
                warnings.warn(message, stacklevel=3)
                continue
            setattr(namespace, name, value)  # ours may be a stale copy from before a reload
            if current is None:
                added.append(f"{namespace.__name__}.{name}")
            if isinstance(exported, list) and name not in exported:
                exported.append(name)
    return added


def unregister(names: Mapping[ModuleType, Iterable[Any]], owner: str) -> list[str]:
    """Remove the names that ``owner`` added; returns the qualified names removed."""
    removed = []
    for namespace, values in names.items():
        exported = getattr(namespace, "__all__", None)
        for name in (value.__name__ for value in values):
            if _is_ours(getattr(namespace, name, None), owner):
                delattr(namespace, name)
                removed.append(f"{namespace.__name__}.{name}")
                if isinstance(exported, list) and name in exported:
                    exported.remove(name)
    return removed
