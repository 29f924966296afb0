"""sciwire.samp: SAMP hub and clients, drop-in for astropy.samp / pyvo.samp.

Blocking API (astropy's names, arguments and defaults)::

    from sciwire.samp import SAMPHubServer, SAMPIntegratedClient

    cli = SAMPIntegratedClient(name="script")
    cli.connect()                      # the hub SAMP_HUB or ~/.samp points to
    cli.enotify_all("table.load.votable", url="file:///tmp/t.xml")
    cli.disconnect()

asyncio API over the same core: :class:`AsyncSAMPIntegratedClient`,
:class:`AsyncSAMPClient`, :class:`AsyncSAMPHubProxy` and the hub's
:class:`AsyncSAMPHub`.
"""

from __future__ import annotations

from sciwire.samp._aclient import AsyncSAMPClient
from sciwire.samp._aintegrated import AsyncSAMPIntegratedClient
from sciwire.samp._aproxy import AsyncSAMPHubProxy, get_main_running_hub
from sciwire.samp._conf import Conf, conf
from sciwire.samp._rpc import SAMPHubConnectError
from sciwire.samp.client import SAMPClient
from sciwire.samp.constants import (
    SAFE_MTYPES,
    SAMP_ICON,
    SAMP_STATUS_ERROR,
    SAMP_STATUS_OK,
    SAMP_STATUS_WARNING,
)
from sciwire.samp.errors import (
    SAMPClientError,
    SAMPDataError,
    SAMPHubError,
    SAMPProxyError,
    SAMPWarning,
)
from sciwire.samp.hub import AsyncSAMPHub, SAMPHubServer, WebProfileDialog
from sciwire.samp.hub_proxy import SAMPHubProxy
from sciwire.samp.integrated_client import SAMPIntegratedClient
from sciwire.samp.utils import SAMPMsgReplierWrapper, SAMPXXEServerProxy, safe_xmlrpc_loads
from sciwire.samp.vo_helpers import (
    accessible_table,
    connection,
    find_client_id,
    send_image_to,
    send_product_to,
    send_spectrum_to,
    send_table_to,
)

__all__ = [
    "SAFE_MTYPES",
    "SAMP_ICON",
    "SAMP_STATUS_ERROR",
    "SAMP_STATUS_OK",
    "SAMP_STATUS_WARNING",
    "AsyncSAMPClient",
    "AsyncSAMPHub",
    "AsyncSAMPHubProxy",
    "AsyncSAMPIntegratedClient",
    "Conf",
    "SAMPClient",
    "SAMPClientError",
    "SAMPDataError",
    "SAMPHubConnectError",
    "SAMPHubError",
    "SAMPHubProxy",
    "SAMPHubServer",
    "SAMPIntegratedClient",
    "SAMPMsgReplierWrapper",
    "SAMPProxyError",
    "SAMPWarning",
    "SAMPXXEServerProxy",
    "WebProfileDialog",
    "accessible_table",
    "conf",
    "connection",
    "find_client_id",
    "get_main_running_hub",
    "safe_xmlrpc_loads",
    "send_image_to",
    "send_product_to",
    "send_spectrum_to",
    "send_table_to",
]
