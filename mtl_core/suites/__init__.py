"""Task suites, keyed by name in :data:`SUITES`."""

from __future__ import annotations

from mtl_core.registry import Registry
from mtl_core.suites.base import Split, Suite, SuiteData, TaskSpec

SUITES: Registry[type[Suite]] = Registry("suite")

__all__ = ["SUITES", "Split", "Suite", "SuiteData", "TaskSpec", "make_suite"]


def make_suite(name: str, **options: object) -> Suite:
    """Instantiate the suite ``name`` with ``options`` (validated)."""
    return SUITES.get(name, "suite")(**options)


# Every module of this package registers its entries on import (one file per entry).
from mtl_core._autoload import import_submodules  # noqa: E402

import_submodules(__name__, __path__)
# User suites (CSV imports in $MTL_LAB_HOME/suites) are not scanned here: ``user_csv`` registers a
# discovery hook that scans them when SUITES is first read, after every built-in suite (so that a
# built-in name always wins) and after the home is known.
