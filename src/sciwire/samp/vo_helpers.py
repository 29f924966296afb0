"""pyvo.samp's helpers: send tables, images and spectra to SAMP clients by name.

Also at the top level (``from sciwire.samp import send_table_to``), as in pyvo.samp.
Broadcasts go only to the clients subscribed to the mtype (pyvo's ``send_table_to``
also calls the hub and every unsubscribed client, which the hub refuses).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sciwire.samp._protocol import make_message
from sciwire.samp.integrated_client import SAMPIntegratedClient

__all__ = [
    "accessible_table",
    "connection",
    "find_client_id",
    "send_image_to",
    "send_product_to",
    "send_spectrum_to",
    "send_table_to",
]

#: The SAMP timeout (seconds, a string as SAMP wants) of ``send_table_to``'s calls.
TABLE_CALL_TIMEOUT = "10"


def find_client_id(conn: Any, name: str) -> str:
    """The public id of the registered client whose ``samp.name`` is *name*.

    Raises:
        KeyError: no such client is registered.
    """
    for client_id in conn.get_registered_clients():
        if conn.get_metadata(client_id).get("samp.name") == name:
            return str(client_id)
    raise KeyError(name)


def send_table_to(
    conn: Any, table: Any, client_name: str | None = None, name: str = "data"
) -> None:
    """Send *table* as a VOTable (``table.load.votable``), waiting for each receiver.

    Args:
        conn: a connected integrated client.
        table: anything with ``to_xml(file)`` (a VOTable tree) or
            ``write(output=file, format="votable")`` (an astropy Table).
        client_name: the receiver's ``samp.name``; None: every subscribed client.
        name: the table's name for the receivers.

    Raises:
        KeyError: no client named *client_name*.
    """
    mtype = "table.load.votable"
    with accessible_table(table) as url:
        message = make_message(mtype, {"url": url, "name": name})
        if client_name is None:
            targets = list(conn.get_subscribed_clients(mtype))
        else:
            targets = [find_client_id(conn, client_name)]
        for client_id in targets:
            conn.call_and_wait(client_id, message, TABLE_CALL_TIMEOUT)


def send_product_to(
    conn: Any, url: str, mtype: str, client_name: str | None = None, name: str = "data"
) -> None:
    """Notify a client (by ``samp.name``), or every subscribed one, to load *url*.

    Raises:
        KeyError: no client named *client_name*.
    """
    message = make_message(mtype, {"url": url, "name": name})
    if client_name is None:
        conn.notify_all(message)
    else:
        conn.notify(find_client_id(conn, client_name), message)


def send_spectrum_to(
    conn: Any, url: str, client_name: str | None = None, name: str = "data"
) -> None:
    """Ask spectrum clients to load *url* (``spectrum.load.ssa-generic``)."""
    send_product_to(conn, url, "spectrum.load.ssa-generic", client_name=client_name, name=name)


def send_image_to(conn: Any, url: str, client_name: str | None = None, name: str = "data") -> None:
    """Ask image clients to load *url* (``image.load.fits``)."""
    send_product_to(conn, url, "image.load.fits", client_name=client_name, name=name)


@contextlib.contextmanager
def accessible_table(table: Any) -> Iterator[str]:
    """Write *table* to a temporary VOTable file and yield its ``file:`` URL.

    The file (owner-only) is removed when the block ends.
    """
    handle, path = tempfile.mkstemp(suffix=".xml")
    try:
        with open(handle, "w", encoding="utf-8") as out:
            if hasattr(table, "to_xml"):
                table.to_xml(out)
            elif hasattr(table, "write"):
                table.write(output=out, format="votable")
            else:
                raise TypeError(
                    f"cannot write a {type(table).__name__} as a VOTable "
                    "(it needs to_xml(file) or write(output=, format='votable'))"
                )
        yield Path(path).as_uri()
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


@contextlib.contextmanager
def connection(
    client_name: str = "pyvo client", description: str = "A generic PyVO client", **kwargs: Any
) -> Iterator[SAMPIntegratedClient]:
    """A connected :class:`SAMPIntegratedClient` for the block, disconnected after it.

    Args:
        client_name: ``samp.name``.
        description: ``samp.description.text``.
        **kwargs: further :class:`SAMPIntegratedClient` arguments.
    """
    client = SAMPIntegratedClient(name=client_name, description=description, **kwargs)
    client.connect()
    try:
        yield client
    finally:
        client.disconnect()
