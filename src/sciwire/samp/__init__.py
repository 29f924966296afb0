"""sciwire.samp: SAMP hub and clients, drop-in for astropy.samp / pyvo.samp."""

from __future__ import annotations

from sciwire.samp.errors import SAMPClientError, SAMPHubError, SAMPProxyError, SAMPWarning
from sciwire.samp.protocol import SAMP_STATUS_ERROR, SAMP_STATUS_OK, SAMP_STATUS_WARNING

__all__ = [
    "SAMP_STATUS_ERROR",
    "SAMP_STATUS_OK",
    "SAMP_STATUS_WARNING",
    "SAMPClientError",
    "SAMPHubError",
    "SAMPProxyError",
    "SAMPWarning",
]
