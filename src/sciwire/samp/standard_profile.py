"""astropy.samp's ``standard_profile`` module.

astropy serves the Standard Profile with the stdlib's threading XML-RPC server
classes (``ThreadingXMLRPCServer``, ``SAMPSimpleXMLRPCRequestHandler``, not in its
``__all__``). sciwire's hub serves it on its own asyncio HTTP/1.1 server
(:class:`sciwire.samp.SAMPHubServer`); this module keeps the path importable and
names the Standard Profile's fixed strings.
"""

from __future__ import annotations

__all__: list[str] = []

#: Prefix of the hub methods a Standard Profile client calls.
HUB_METHOD_PREFIX = "samp.hub."
#: Prefix of the callbacks the hub calls on a Standard Profile client.
CLIENT_METHOD_PREFIX = "samp.client."
#: ``SAMP_HUB`` value prefix naming a Standard Profile lockfile URL.
LOCKURL_PREFIX = "std-lockurl:"
