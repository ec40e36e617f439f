"""Import every module of a package so that each built-in entry registers itself."""

from __future__ import annotations

import importlib
import pkgutil

__all__ = ["import_submodules"]


def import_submodules(package_name: str, package_path: list[str], skip: tuple[str, ...] = ("base",)) -> None:
    for info in sorted(pkgutil.iter_modules(package_path), key=lambda m: m.name):
        if info.name.startswith("_") or info.name in skip:
            continue
        importlib.import_module(f"{package_name}.{info.name}")
