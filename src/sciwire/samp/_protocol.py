"""The sans-I/O SAMP core: data model, messages, responses, lockfile and XML-RPC codec.

No sockets, no threads, no clock. Everything here takes plain values (or bytes) and
returns plain values (or bytes), so hub and clients share it and tests can fuzz it.

SAMP 1.3 carries only three types: string, list and map. Strings hold the characters
0x09, 0x0a, 0x0d and 0x20-0x7f. Numbers and booleans travel as strings ("1"/"0").
"""

from __future__ import annotations

import logging
import math
import os
import re
import urllib.parse
import urllib.request
import xmlrpc.client
from collections.abc import Iterable, Mapping
from typing import Any, TypeAlias
from xml.sax.saxutils import escape as xml_escape

from sciwire.samp.errors import SAMPDataError, SAMPProxyError

__all__ = [
    "DEFAULT_LOCKFILE_NAME",
    "HUB_EVENT_DISCONNECT",
    "HUB_EVENT_METADATA",
    "HUB_EVENT_REGISTER",
    "HUB_EVENT_SHUTDOWN",
    "HUB_EVENT_SUBSCRIPTIONS",
    "HUB_EVENT_UNREGISTER",
    "MAX_BODY_BYTES",
    "PROFILE_VERSION",
    "SAFE_MTYPES",
    "SAMP_STATUS_ERROR",
    "SAMP_STATUS_OK",
    "SAMP_STATUS_WARNING",
    "SampValue",
    "check_message",
    "check_mtype",
    "check_mtype_pattern",
    "check_response",
    "check_value",
    "client_env_response",
    "decode_call",
    "decode_response",
    "encode_call",
    "encode_fault",
    "encode_keyed_call",
    "encode_params",
    "encode_response",
    "format_lockfile",
    "is_safe_mtype",
    "is_samp_string",
    "lockurl_to_path",
    "make_error_response",
    "make_message",
    "make_ok_response",
    "make_response",
    "mtype_subtypes",
    "parse_lockfile",
    "samp_text",
    "stringify",
]

logger = logging.getLogger(__name__)

SampValue: TypeAlias = "str | list[Any] | dict[str, Any]"

#: Response status values (``samp.status``).
SAMP_STATUS_OK = "samp.ok"
SAMP_STATUS_WARNING = "samp.warning"
SAMP_STATUS_ERROR = "samp.error"
_STATUSES = frozenset({SAMP_STATUS_OK, SAMP_STATUS_WARNING, SAMP_STATUS_ERROR})

#: The SAMP profile version this package speaks.
PROFILE_VERSION = "1.3"

#: Hub-sent mtypes.
HUB_EVENT_SHUTDOWN = "samp.hub.event.shutdown"
HUB_EVENT_REGISTER = "samp.hub.event.register"
HUB_EVENT_UNREGISTER = "samp.hub.event.unregister"
HUB_EVENT_METADATA = "samp.hub.event.metadata"
HUB_EVENT_SUBSCRIPTIONS = "samp.hub.event.subscriptions"
HUB_EVENT_DISCONNECT = "samp.hub.disconnect"

#: MType patterns a Web Profile client may send by default (JSAMP's list).
SAFE_MTYPES = (
    "samp.app.*",
    "samp.msg.progress",
    "table.*",
    "image.*",
    "coord.*",
    "spectrum.*",
    "bibcode.*",
    "voresource.*",
)

#: Largest XML-RPC body accepted by default (bytes).
MAX_BODY_BYTES = 16 * 1024 * 1024

DEFAULT_LOCKFILE_NAME = ".samp"

_SAMP_STRING = re.compile(r"[\t\n\r\x20-\x7f]*\Z")
_ATOM = r"[0-9A-Za-z_\-]+"
_MTYPE = re.compile(rf"{_ATOM}(?:\.{_ATOM})*\Z")
_MTYPE_STRICT = re.compile(r"[0-9a-z_\-]+(?:\.[0-9a-z_\-]+)*\Z")
_LOCK_KEY = re.compile(r"[a-zA-Z0-9\-_.]+\Z")
_LOCK_VALUE = re.compile(r"[\x20-\x7f]*\Z")
_XML_DECL = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


# -- data model ---------------------------------------------------------------------


def is_samp_string(value: object) -> bool:
    """Tell whether *value* is a str made only of SAMP-legal characters."""
    return isinstance(value, str) and _SAMP_STRING.match(value) is not None


def check_value(
    value: object, *, coerce: bool = False, where: str = "value", keep: bool = False
) -> Any:
    """Check that *value* is SAMP data (string, list, map) and return it.

    Args:
        value: the value to check, nested lists and maps included.
        coerce: turn ints, floats and bools into strings (bools as "1"/"0") instead
            of refusing them; the result is then a new, converted value.
        where: a name for the value in error messages.
        keep: let ints, floats and bools through as they are (astropy's hub does;
            strict SAMP peers such as JSAMP refuse them). *coerce* wins.

    Raises:
        SAMPDataError: a type other than str/list/tuple/dict (or number when not
            coercing), a non-string map key, or an illegal character.
    """
    if isinstance(value, str):
        if _SAMP_STRING.match(value) is None:
            bad = next(c for c in value if not _SAMP_STRING.match(c))
            raise SAMPDataError(f"{where}: illegal character {bad!r} in SAMP string", value)
        return value
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise SAMPDataError(f"{where}: map key {key!r} is not a string")
            check_value(key, where=f"{where} key")
            out[key] = check_value(item, coerce=coerce, where=f"{where}[{key!r}]", keep=keep)
        return out if coerce else value
    if isinstance(value, list | tuple):
        items = [
            check_value(v, coerce=coerce, where=f"{where}[{i}]", keep=keep)
            for i, v in enumerate(value)
        ]
        return items if coerce or isinstance(value, tuple) else value
    if isinstance(value, bool | int | float):
        if coerce:
            return stringify(value)
        if keep:
            return value
    raise SAMPDataError(f"{where}: {type(value).__name__} is not a SAMP type (string, list, map)")


def stringify(value: Any) -> Any:
    """Convert ints, floats and bools (nested too) into SAMP strings.

    ``True``/``False`` become "1"/"0", ints their decimal form, floats ``repr`` (a
    non-finite float is refused). Tuples become lists. Strings, lists and maps are
    walked; any other type raises :class:`SAMPDataError`.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SAMPDataError(f"cannot send a non-finite float {value!r} over SAMP")
        return repr(value)
    if isinstance(value, Mapping):
        return {str(k) if not isinstance(k, str) else k: stringify(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [stringify(v) for v in value]
    raise SAMPDataError(f"{type(value).__name__} is not a SAMP type (string, list, map)")


def check_mtype(mtype: object, *, strict: bool = False) -> str:
    """Check an MType's syntax (dot-separated atoms) and return it.

    The spec's atoms are ``[0-9a-z_-]``; by default upper case is accepted too because
    standard mtypes such as ``coord.pointAt.sky`` use it. ``strict=True`` refuses it.

    Raises:
        SAMPDataError: not a string, or malformed.
    """
    if not isinstance(mtype, str):
        raise SAMPDataError(f"an mtype is a string, not {type(mtype).__name__}")
    pattern = _MTYPE_STRICT if strict else _MTYPE
    if pattern.match(mtype) is None:
        raise SAMPDataError("malformed mtype", mtype)
    return mtype


def check_mtype_pattern(pattern: object) -> str:
    """Check a subscription pattern (``*``, ``a.b.*`` or an mtype) and return it.

    Raises:
        SAMPDataError: not a string, or malformed.
    """
    if not isinstance(pattern, str):
        raise SAMPDataError(f"an mtype pattern is a string, not {type(pattern).__name__}")
    if pattern == "*":
        return pattern
    base = pattern[:-2] if pattern.endswith(".*") else pattern
    if _MTYPE.match(base) is None:
        raise SAMPDataError("malformed mtype pattern", pattern)
    return pattern


def mtype_subtypes(mtype: str) -> list[str]:
    """The subscription patterns that match *mtype*, most specific first.

    ``"a.b.c"`` gives ``["a.b.c", "a.b.*", "a.*", "*"]``.
    """
    atoms = mtype.split(".")
    return [mtype] + [".".join([*atoms[:n], "*"]) for n in range(len(atoms) - 1, -1, -1)]


def is_safe_mtype(
    mtype: str, annotation: Mapping[str, Any] | None = None, safe: Iterable[str] = SAFE_MTYPES
) -> bool:
    """Tell whether a Web Profile client may send *mtype* to a recipient.

    The recipient's subscription *annotation* decides first: ``samp.mostly-harmless``
    (or ``x-samp.mostly-harmless``) "1" allows and "0" refuses. Otherwise the mtype
    must match one of the *safe* patterns.
    """
    if annotation:
        flag = annotation.get("samp.mostly-harmless", annotation.get("x-samp.mostly-harmless"))
        if flag == "1":
            return True
        if flag == "0":
            return False
    for pattern in safe:
        if pattern == "*" or pattern == mtype:
            return True
        if pattern.endswith(".*") and mtype.startswith(pattern[:-1]):
            return True
    return False


# -- messages and responses -----------------------------------------------------------


def make_message(
    mtype: str, params: Mapping[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    """Build a SAMP message ``{samp.mtype, samp.params}``; *extra* adds top-level keys."""
    message: dict[str, Any] = {"samp.mtype": mtype, "samp.params": dict(params or {})}
    message.update(extra)
    return message


def make_response(
    status: str, result: Mapping[str, Any] | None = None, error: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Build a SAMP response map with *status* and optional result and error maps."""
    response: dict[str, Any] = {"samp.status": status}
    if result is not None:
        response["samp.result"] = dict(result)
    if error is not None:
        response["samp.error"] = dict(error)
    return response


def make_ok_response(result: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A ``samp.ok`` response carrying *result* (empty map by default)."""
    return make_response(SAMP_STATUS_OK, result or {})


def make_error_response(
    errortxt: str,
    *,
    usertxt: str | None = None,
    debugtxt: str | None = None,
    code: str | None = None,
    **extra: str,
) -> dict[str, Any]:
    """A ``samp.error`` response whose ``samp.error`` map holds the given texts."""
    error: dict[str, Any] = {"samp.errortxt": errortxt}
    for key, text in (("samp.usertxt", usertxt), ("samp.debugtxt", debugtxt), ("samp.code", code)):
        if text is not None:
            error[key] = text
    error.update(extra)
    return make_response(SAMP_STATUS_ERROR, {}, error)


def client_env_response(name: str | None) -> dict[str, Any]:
    """The response to ``client.env.get``: environment variable *name*'s value, or a
    ``samp.warning`` with an empty value when it is not set (or *name* is None)."""
    if name is not None and name in os.environ:
        return {"samp.status": SAMP_STATUS_OK, "samp.result": {"value": os.environ[name]}}
    return {
        "samp.status": SAMP_STATUS_WARNING,
        "samp.result": {"value": ""},
        "samp.error": {"samp.errortxt": "Environment variable not defined."},
    }


def check_message(message: object, *, coerce: bool = False, keep: bool = False) -> dict[str, Any]:
    """Check a SAMP message map and return it (converted if *coerce*; see check_value).

    Requires a map with a well-formed string ``samp.mtype``; ``samp.params``, when
    present, must be a map. Other top-level keys are allowed (and kept).

    Raises:
        SAMPDataError: the message breaks the data model.
    """
    if not isinstance(message, dict):
        raise SAMPDataError(f"a message is a map, not {type(message).__name__}")
    checked: dict[str, Any] = check_value(message, coerce=coerce, where="message", keep=keep)
    check_mtype(checked.get("samp.mtype"))
    params = checked.get("samp.params", {})
    if not isinstance(params, dict):
        raise SAMPDataError(f"samp.params is a map, not {type(params).__name__}")
    return checked


def check_response(response: object, *, coerce: bool = False, keep: bool = False) -> dict[str, Any]:
    """Check a SAMP response map and return it (converted if *coerce*; see check_value).

    Requires a map whose ``samp.status`` is one of the three status strings; a
    ``samp.result`` or ``samp.error`` entry, when present, must be a map.

    Raises:
        SAMPDataError: the response breaks the data model.
    """
    if not isinstance(response, dict):
        raise SAMPDataError(f"a response is a map, not {type(response).__name__}")
    checked: dict[str, Any] = check_value(response, coerce=coerce, where="response", keep=keep)
    status = checked.get("samp.status")
    if status not in _STATUSES:
        raise SAMPDataError("samp.status must be samp.ok, samp.warning or samp.error", status)
    for key in ("samp.result", "samp.error"):
        if key in checked and not isinstance(checked[key], dict):
            raise SAMPDataError(f"{key} is a map, not {type(checked[key]).__name__}")
    return checked


# -- lockfile -------------------------------------------------------------------------


def parse_lockfile(text: str) -> dict[str, str]:
    """Parse lockfile text into a dict.

    Lines are comments (``#``), blank, or ``key=value`` split at the FIRST ``=`` (so
    values may contain ``=``). A malformed line is logged and skipped.
    """
    fields: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip("\r")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or _LOCK_KEY.match(key) is None:
            logger.warning("lockfile line %d is not key=value, skipped: %.80r", number, line)
            continue
        fields[key] = value
    return fields


def format_lockfile(fields: Mapping[str, str], comment: str | None = None) -> str:
    """Render lockfile text, one ``key=value`` line each, after optional comment lines.

    Raises:
        SAMPDataError: a key or value has characters the lockfile format forbids.
    """
    lines = [f"# {line}" for line in (comment or "").splitlines()]
    for key, value in fields.items():
        if not isinstance(key, str) or _LOCK_KEY.match(key) is None:
            raise SAMPDataError("illegal lockfile key", key)
        if not isinstance(value, str) or _LOCK_VALUE.match(value) is None:
            raise SAMPDataError(f"illegal lockfile value for {key}", value)
        lines.append(f"{key}={value}")
    return "\n".join(lines) + "\n"


def lockurl_to_path(url: str) -> str | None:
    """The local path of a ``file:`` lockfile URL, or None if *url* is not one."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme != "file":
        return None
    if parsed.netloc not in ("", "localhost"):
        return None
    return urllib.request.url2pathname(parsed.path)


# -- XML-RPC codec ---------------------------------------------------------------------


def _check_body(body: bytes, max_size: int) -> None:
    if len(body) > max_size:
        raise SAMPDataError(f"XML-RPC body of {len(body)} bytes exceeds the {max_size} limit")
    if _XML_DECL.search(body) is not None:
        raise SAMPDataError("XML-RPC body with a DOCTYPE or ENTITY declaration refused")


def decode_call(body: bytes, *, max_size: int = MAX_BODY_BYTES) -> tuple[str, tuple[Any, ...]]:
    """Decode an XML-RPC request into ``(method name, params)``.

    Refuses bodies over *max_size* and any DOCTYPE/ENTITY declaration (no entity
    expansion, no external entities).

    Raises:
        SAMPDataError: too big, not well-formed XML-RPC, or not a method call.
    """
    _check_body(body, max_size)
    try:
        params, method = xmlrpc.client.loads(body, use_builtin_types=True)
    except Exception as exc:  # expat, ValueError, TypeError, ResponseError...
        raise SAMPDataError(f"malformed XML-RPC call ({type(exc).__name__})", body) from exc
    if not isinstance(method, str) or not method:
        raise SAMPDataError("XML-RPC body is not a method call", body)
    return method, params


def decode_response(body: bytes, *, max_size: int = MAX_BODY_BYTES) -> Any:
    """Decode an XML-RPC response and return its single value.

    Raises:
        SAMPProxyError: the response is a fault.
        SAMPDataError: too big or not well-formed XML-RPC.
    """
    _check_body(body, max_size)
    try:
        params, _ = xmlrpc.client.loads(body, use_builtin_types=True)
    except xmlrpc.client.Fault as fault:
        raise SAMPProxyError(fault.faultCode, fault.faultString) from None
    except Exception as exc:
        raise SAMPDataError(f"malformed XML-RPC response ({type(exc).__name__})", body) from exc
    if len(params) != 1:
        raise SAMPDataError(f"XML-RPC response carries {len(params)} values, not 1", body)
    return params[0]


def encode_call(method: str, params: Iterable[Any]) -> bytes:
    """Encode an XML-RPC method call.

    Raises:
        SAMPDataError: a parameter cannot be encoded (None, an unknown type).
    """
    try:
        return xmlrpc.client.dumps(tuple(params), methodname=method, encoding="utf-8").encode()
    except (TypeError, OverflowError) as exc:
        raise SAMPDataError(f"cannot encode XML-RPC call {method}: {exc}") from exc


def encode_params(params: Iterable[Any]) -> bytes:
    """Encode XML-RPC ``<param>`` elements (no ``<params>`` wrapper) for :func:`encode_keyed_call`.

    Raises:
        SAMPDataError: a parameter cannot be encoded.
    """
    try:
        marshalled = xmlrpc.client.Marshaller("utf-8").dumps(tuple(params))
    except (TypeError, OverflowError) as exc:
        raise SAMPDataError(f"cannot encode XML-RPC parameters: {exc}") from exc
    return marshalled.removeprefix("<params>\n").removesuffix("</params>\n").encode()


def encode_keyed_call(method: str, key: str, encoded_params: bytes) -> bytes:
    """Encode a call whose first parameter is *key*, the rest pre-encoded by
    :func:`encode_params`. A hub sends one message to many clients, each with its
    own private key: the message is encoded once."""
    head = (
        "<?xml version='1.0'?>\n<methodCall>\n<methodName>"
        f"{xml_escape(method)}</methodName>\n<params>\n"
        f"<param>\n<value><string>{xml_escape(key)}</string></value>\n</param>\n"
    )
    return head.encode() + encoded_params + b"</params>\n</methodCall>\n"


def encode_response(value: Any) -> bytes:
    """Encode an XML-RPC response carrying *value* (SAMP's void result is ``""``).

    Raises:
        SAMPDataError: the value cannot be encoded.
    """
    try:
        return xmlrpc.client.dumps((value,), methodresponse=True, encoding="utf-8").encode()
    except (TypeError, OverflowError) as exc:
        raise SAMPDataError(f"cannot encode XML-RPC response: {exc}") from exc


_NOT_SAMP = re.compile(r"[^\t\n\r\x20-\x7e]")


def samp_text(text: str) -> str:
    """*text* with every character SAMP strings (and XML) cannot carry escaped as ``\\xNN``."""
    return _NOT_SAMP.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def encode_fault(code: int, text: str) -> bytes:
    """Encode an XML-RPC fault response (illegal characters in *text* are escaped)."""
    fault = xmlrpc.client.Fault(code, samp_text(text))
    return xmlrpc.client.dumps(fault, methodresponse=True, encoding="utf-8").encode()
