"""pandas, imported only when a DataFrame is built (pandas is the optional ``drms`` extra).

``sciwire.drms`` itself (HttpJsonClient, the emulator, the CLI) runs without pandas;
``Client``, ``SeriesInfo``, ``ExportRequest`` and ``to_datetime`` need it, as drms does.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from sciwire.errors import SciwireError

__all__ = ["EXTRA_HINT", "MissingExtraError", "numpy", "pandas"]

EXTRA_HINT = "pip install 'sciwire[drms]'"


class MissingExtraError(SciwireError, ImportError):
    """An optional dependency of sciwire.drms is not installed (also an ImportError)."""


def _load(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise MissingExtraError(
            f"sciwire.drms needs {name} for DataFrames (drms.Client, SeriesInfo, "
            f"ExportRequest, to_datetime); install the drms extra: {EXTRA_HINT}"
        ) from exc


def pandas() -> ModuleType:
    """The pandas module, or MissingExtraError naming the extra to install."""
    return _load("pandas")


def numpy() -> ModuleType:
    """The numpy module (a pandas dependency), or MissingExtraError naming the extra."""
    return _load("numpy")
