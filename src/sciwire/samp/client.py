"""astropy.samp's ``client`` module: the callable client application, :class:`SAMPClient`."""

from __future__ import annotations

from sciwire.samp._client import SAMPClient

__all__ = ["SAMPClient"]
