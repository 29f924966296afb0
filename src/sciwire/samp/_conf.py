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
_HELP = {
    "use_internet": "whether internet_on() may probe the internet (sciwire never does itself)",
    "n_retries": "kept for astropy code that reads it; sciwire does not retry delivery",
}


class Conf:
    """Configuration of :mod:`sciwire.samp`.

    Attributes:
        use_internet: whether :func:`sciwire.samp.utils.internet_on` may probe the
            internet at all (sciwire's hub and clients never probe it).
        n_retries: astropy's retry count for deliveries to clients (default 10);
            kept for code that reads it: sciwire's hub does not retry (a client whose
            callback endpoint refuses connections is unregistered).
    """

    use_internet: bool = True
    n_retries: int = 10

    def __init__(self) -> None:
        self.reset()

    def reset(self, name: str | None = None) -> None:
        """Put one item (or all of them) back to its default."""
        for key, value in _DEFAULTS.items():
            if name is None or name == key:
                setattr(self, key, value)
        if name is not None and name not in _DEFAULTS:
            raise AttributeError(f"no configuration item {name!r} in sciwire.samp.conf")

    def keys(self) -> list[str]:
        """The item names."""
        return list(_DEFAULTS)

    def values(self) -> list[Any]:
        """The item values."""
        return [getattr(self, key) for key in _DEFAULTS]

    def items(self) -> list[tuple[str, Any]]:
        """``(name, value)`` pairs."""
        return [(key, getattr(self, key)) for key in _DEFAULTS]

    def reload(self, name: str | None = None) -> None:
        """Back to the defaults (there is no configuration file to read again)."""
        self.reset(name)

    def help(self, name: str | None = None) -> str:
        """What the items mean, one line each (astropy prints it; we return it)."""
        keys = list(_DEFAULTS) if name is None else [name]
        return "\n".join(f"{key} = {getattr(self, key)!r}: {_HELP[key]}" for key in keys)

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
