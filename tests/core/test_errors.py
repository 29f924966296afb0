from __future__ import annotations

import pytest

from sciwire import errors


def test_every_error_is_a_sciwire_error() -> None:
    for name in errors.__all__:
        obj = getattr(errors, name)
        if isinstance(obj, type):
            assert issubclass(obj, errors.SciwireError), name


def test_tree_shape() -> None:
    assert issubclass(errors.LocalProtocolError, errors.ProtocolError)
    assert issubclass(errors.RemoteProtocolError, errors.ProtocolError)
    for cls in (errors.ConnectError, errors.Timeout, errors.ConnectionClosed):
        assert issubclass(cls, errors.TransportError)
    assert not issubclass(errors.RemoteError, errors.TransportError)


def test_timeout_is_builtin_timeout_error() -> None:
    with pytest.raises(TimeoutError):
        raise errors.Timeout("no answer")


def test_connect_error_is_os_error() -> None:
    with pytest.raises(OSError) as info:
        raise errors.ConnectError("refused")
    assert str(info.value) == "refused"


def test_protocol_error_keeps_trimmed_input() -> None:
    exc = errors.RemoteProtocolError("bad frame", b"x" * 1000)
    assert exc.data is not None
    assert exc.data.startswith("xxx")
    assert "(1000 chars)" in exc.data
    assert len(str(exc)) < 300
    assert errors.LocalProtocolError("bad").data is None


def test_trim_forms() -> None:
    assert errors.trim("abc") == "abc"
    assert errors.trim(b"\xffab") == "\ufffdab"
    assert errors.trim([1, 2]) == "[1, 2]"


def test_remote_error_carries_peer_fields() -> None:
    exc = errors.RemoteError("boom", code=-32000, data={"traceback": "tb"})
    assert (exc.message, exc.code, exc.data) == ("boom", -32000, {"traceback": "tb"})
    assert str(exc) == "boom"


def test_portal_error_is_runtime_error() -> None:
    assert issubclass(errors.PortalError, RuntimeError)
