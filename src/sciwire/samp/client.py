"""astropy.samp's ``client`` module: the callable client application, :class:`SAMPClient`."""

from __future__ import annotations

from sciwire.samp._client import SAMPClient

# names astropy's module also offers (it imports them)
from sciwire.samp.constants import SAMP_STATUS_OK, SAMP_STATUS_WARNING  # noqa: F401
from sciwire.samp.errors import SAMPClientError, SAMPWarning  # noqa: F401
from sciwire.samp.hub import SAMPHubServer  # noqa: F401
from sciwire.samp.utils import get_num_args, internet_on  # noqa: F401

__all__ = ["SAMPClient"]
