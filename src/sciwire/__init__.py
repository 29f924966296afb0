"""sciwire: clients and servers for scientific instrument and facility protocols.

Each protocol lives in its own subpackage (``sciwire.command``, ``sciwire.drms``,
``sciwire.samp``, ``sciwire.ifcb``, ``sciwire.rig``) over one shared core
(``sciwire.core``) and one exception tree (``sciwire.errors``).
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
