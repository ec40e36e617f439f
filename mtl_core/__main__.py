"""Entry point for ``python -m mtl_core``."""

from __future__ import annotations

import sys

from mtl_core.cli import main

if __name__ == "__main__":
    sys.exit(main())
