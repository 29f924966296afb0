"""pyvo.samp's helpers (sciwire.samp.vo_helpers) against a real hub on loopback."""

from __future__ import annotations

import os
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from sciwire.samp import (
    SAMPHubServer,
    SAMPIntegratedClient,
    SAMPWarning,
    accessible_table,
    connection,
    find_client_id,
    send_image_to,
    send_product_to,
    send_spectrum_to,
    send_table_to,
)
from tests.samp.clientkit import ClientFactory, Inbox

VOTABLE = '<?xml version="1.0"?><VOTABLE version="1.4"><RESOURCE/></VOTABLE>\n'


class Tree:
    """A VOTable tree (to_xml), as astropy.io.votable's."""

    def to_xml(self, out: Any) -> None:
        out.write(VOTABLE)


class Table:
    """A table with astropy Table's write(output=, format=)."""

    def write(self, output: Any, format: str) -> None:
        assert format == "votable"
        output.write(VOTABLE)


def _path(url: str) -> str:
    return urllib.request.url2pathname(urllib.parse.urlparse(url).path)


@pytest.mark.parametrize("table", [Tree(), Table()])
def test_accessible_table_lives_for_the_block(table: Any) -> None:
    with accessible_table(table) as url:
        assert url.startswith("file:")
        assert Path(_path(url)).read_text() == VOTABLE
    assert not os.path.exists(_path(url))
    with pytest.raises(TypeError), accessible_table(object()):
        pass


def test_send_table_to_by_name_and_to_every_subscriber(make: ClientFactory) -> None:
    seen: list[tuple[str, str, str]] = []

    def receiver(name: str) -> SAMPIntegratedClient:
        client = make(name)

        def on_table(
            key: str, sender: str, msg_id: str, mtype: str, params: Any, extra: Any
        ) -> None:
            seen.append((name, params["name"], Path(_path(params["url"])).read_text()))
            client.ereply(msg_id, "samp.ok")

        client.bind_receive_call("table.load.votable", on_table)
        return client

    viewer, other = receiver("viewer"), receiver("other")
    make("bystander")  # registered, not subscribed: a broadcast must skip it
    sender = make("sender")
    assert find_client_id(sender, "viewer") == viewer.get_public_id()
    with pytest.raises(KeyError):
        find_client_id(sender, "nobody")
    send_table_to(sender, Tree(), client_name="viewer", name="t1")
    assert seen == [("viewer", "t1", VOTABLE)]
    seen.clear()
    send_table_to(sender, Table(), name="t2")
    assert sorted(seen) == [("other", "t2", VOTABLE), ("viewer", "t2", VOTABLE)]
    assert other.get_public_id() != viewer.get_public_id()


def test_send_image_and_spectrum(make: ClientFactory) -> None:
    inbox = Inbox()
    viewer = make("viewer")
    viewer.bind_receive_notification("image.load.fits", inbox.notification_handler())
    viewer.bind_receive_notification("spectrum.load.ssa-generic", inbox.notification_handler())
    sender = make("sender")
    send_image_to(sender, "file:///tmp/i.fits", client_name="viewer", name="img")
    send_spectrum_to(sender, "file:///tmp/s.fits")
    got = inbox.wait(2)
    assert [(m, p["url"], p["name"]) for _, m, p, _ in got] == [
        ("image.load.fits", "file:///tmp/i.fits", "img"),
        ("spectrum.load.ssa-generic", "file:///tmp/s.fits", "data"),
    ]
    with pytest.warns(SAMPWarning):  # a broadcast nobody subscribed to
        send_product_to(sender, "file:///tmp/x", "image.load.nothing")


def test_connection_connects_for_the_block(
    hub: SAMPHubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert hub.lockfile is not None
    monkeypatch.setenv("SAMP_HUB", f"std-lockurl:{Path(hub.lockfile).as_uri()}")
    with connection(client_name="script", description="d") as conn:
        assert conn.is_connected
        me = conn.get_public_id()
        assert conn.get_metadata(me)["samp.name"] == "script"
    assert not conn.is_connected
