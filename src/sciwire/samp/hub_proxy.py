"""astropy.samp's ``hub_proxy`` module: :class:`SAMPHubProxy`, the hub's methods as calls."""

from __future__ import annotations

from sciwire.samp._client import SAMPHubProxy

# names astropy's module also offers (it imports them)
from sciwire.samp.errors import SAMPHubError  # noqa: F401
from sciwire.samp.lockfile_helpers import get_main_running_hub  # noqa: F401
from sciwire.samp.utils import SAMPXXEServerProxy, ServerProxyPool  # noqa: F401

__all__ = ["SAMPHubProxy"]
