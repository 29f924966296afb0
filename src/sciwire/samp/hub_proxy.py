"""astropy.samp's ``hub_proxy`` module: :class:`SAMPHubProxy`, the hub's methods as calls."""

from __future__ import annotations

from sciwire.samp._client import SAMPHubProxy

__all__ = ["SAMPHubProxy"]
