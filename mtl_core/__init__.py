"""MTL Lab's engine: task suites, sharing strategies, balancing methods, trainer, run store.

No Streamlit here: everything is usable headless (``python -m mtl_core …``).
"""

from __future__ import annotations

from mtl_core.config import TrainConfig
from mtl_core.errors import ConfigError, MTLError

__all__ = ["TrainConfig", "ConfigError", "MTLError", "__version__"]
__version__ = "0.1.0"
