"""Lazy package exports (PEP 562): a package lists its torch-backed names and imports their modules on first use,
so that reading data or building datasets never loads torch."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any


def lazy_getattr(package: str, members: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``members`` maps each lazy name to the module that defines it."""

    def __getattr__(name: str) -> Any:
        if name in members:
            return getattr(importlib.import_module(members[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


def lazy_dir(namespace: Mapping[str, Any], members: Mapping[str, str]) -> Callable[[], list[str]]:
    """A module ``__dir__`` listing the public exports (``__all__``, the lazy names) and the package's imported
    submodules, so tab completion and ``help()`` show them before their first use, and not the helpers the
    module imports for itself (``annotations``, ``TYPE_CHECKING``, ``lazy_getattr``)."""
    package = namespace.get("__name__", "")

    def __dir__() -> list[str]:
        submodules = {
            name
            for name, value in namespace.items()
            if isinstance(value, ModuleType) and value.__name__ == f"{package}.{name}"
        }
        return sorted({*namespace.get("__all__", ()), *members, *submodules})

    return __dir__
