"""``sciwire.samp.conf``: astropy.samp's two configuration items, as a plain object.

astropy keeps them in a ``ConfigNamespace`` read from astropy's config file; here
they are attributes set in code (``conf.use_internet = False``), with astropy's
``set_temp`` and ``reset`` for scoped changes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

__all__ = ["Conf", "conf"]

_DEFAULTS: dict[str, Any] = {"use_internet": True, "n_retries": 10}


class Conf:
    """Configuration of :mod:`sciwire.samp`.

    Attributes:
        use_internet: whether :func:`sciwire.samp.utils.internet_on` may probe the
            internet at all (sciwire's hub and clients never probe it).
        n_retries: how many times a hub proxy retries a call whose connection was
            refused before raising (astropy's default, 10).
    """

    use_internet: bool
    n_retries: int

    def __init__(self) -> None:
        self.reset()

    def reset(self, name: str | None = None) -> None:
        """Put one item (or all of them) back to its default."""
        for key, value in _DEFAULTS.items():
            if name is None or name == key:
                setattr(self, key, value)
        if name is not None and name not in _DEFAULTS:
            raise AttributeError(f"no configuration item {name!r} in sciwire.samp.conf")

    @contextlib.contextmanager
    def set_temp(self, name: str, value: Any) -> Iterator[None]:
        """Set *name* to *value* inside a ``with`` block, then restore it."""
        if name not in _DEFAULTS:
            raise AttributeError(f"no configuration item {name!r} in sciwire.samp.conf")
        old = getattr(self, name)
        setattr(self, name, value)
        try:
            yield
        finally:
            setattr(self, name, old)


conf = Conf()
