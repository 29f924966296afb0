"""Sans-I/O core of the CryoSPARC command RPC: JSON-RPC over HTTP.

Bytes and Python values in, bytes, values or :class:`CommandError` out; no sockets,
no threads, no clock. Both sides live here: the client's request building and
response parsing, and the server's call decoding and reply encoding.

Wire facts (shared/protocols/command.md): every call is ``POST {url}/api`` with body
``{"jsonrpc": "2.0", "method": NAME, "params": PARAMS, "id": "<uuid4>"}``; PARAMS is
the kwargs dict when kwargs are given, else the positional list. A reply is accepted
with just ``{"result": ...}``; errors use JSON-RPC 1.1-style fields
``{"name", "message", "code", "data": {"traceback"}}``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sciwire.command._errors import CommandError
from sciwire.core.jsonfast import loads
from sciwire.errors import trim

__all__ = [
    "DESCRIBE",
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "SERVER_ERROR",
    "Call",
    "NumpyEncoder",
    "ProcInfo",
    "RpcFault",
    "decode_call",
    "default_encoder",
    "describe_result",
    "encode_error",
    "encode_request",
    "encode_result",
    "format_server_error",
    "http_error",
    "make_params",
    "new_id",
    "parse_describe",
    "parse_response",
]

DESCRIBE = "system.describe"

# JSON-RPC 2.0 error codes; SERVER_ERROR is what an exception raised by a procedure gets.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SERVER_ERROR = -32000

Params = list[Any] | dict[str, Any]


class NumpyEncoder(json.JSONEncoder):
    """A JSON encoder that also writes numpy arrays (as lists) and numpy scalars.

    Used for request bodies when numpy is installed and no ``cls`` is given. Sets,
    tuples-in-sets and bytes are not guessed at: they raise ``TypeError`` as usual.
    """

    def default(self, o: Any) -> Any:
        """Turn numpy values into plain Python ones."""
        tolist = getattr(o, "tolist", None)
        module = type(o).__module__
        if tolist is not None and module.startswith("numpy"):
            return tolist()
        return super().default(o)


def default_encoder() -> type[json.JSONEncoder]:
    """The request encoder used when the caller gives no ``cls``.

    :class:`NumpyEncoder` when numpy is importable, else the stdlib encoder. (The
    numpy check is by module name, so numpy itself is never imported here.)
    """
    try:
        import importlib.util

        if importlib.util.find_spec("numpy") is not None:
            return NumpyEncoder
    except (ImportError, ValueError):  # pragma: no cover - broken installs
        pass
    return json.JSONEncoder


def _loads(data: bytes | str) -> Any:
    """``json.loads``, minus its encoding sniffing for the usual UTF-8 object body.

    A body starting ``{`` and a non-NUL byte is UTF-8 (the sniffing would say so too);
    anything else goes to ``json.loads`` unchanged. Raises what ``json.loads`` raises.
    """
    if type(data) is bytes and data[:1] == b"{" and data[1:2] != b"\x00":
        return loads(data.decode())
    return json.loads(data)


# -- client side --------------------------------------------------------------------

_UUID4_BITS = (4 << 76) | (2 << 62)  # version 4, RFC 4122 variant
_UUID4_MASK = ~((0xF << 76) | (0x3 << 62)) & ((1 << 128) - 1)


def new_id() -> str:
    """A random UUID4 string for a request id.

    Ids need to be unique, not secret: built from :mod:`random` rather than
    ``uuid.uuid4()``, which reads ``os.urandom`` (a system call) on every call.
    """
    n = (random.getrandbits(128) & _UUID4_MASK) | _UUID4_BITS
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def make_params(args: Sequence[Any], kwargs: Mapping[str, Any]) -> Params:
    """The JSON-RPC params for a call: the kwargs dict, else the positional list.

    Raises:
        TypeError: both positional and keyword arguments were given. (The original
            client silently dropped the positional ones.)
    """
    if kwargs:
        if args:
            raise TypeError(
                "JSON-RPC params are either positional or keyword, not both: got "
                f"{len(args)} positional and keyword {sorted(kwargs)}"
            )
        return dict(kwargs)
    return list(args)


def encode_request(
    method: str,
    params: Params,
    *,
    request_id: str | None = None,
    cls: type[json.JSONEncoder] | None = None,
    encoder: json.JSONEncoder | None = None,
) -> bytes:
    """The body of one JSON-RPC call (UTF-8 JSON bytes).

    *encoder* (an instance, reused across calls: cheaper) wins over *cls*.

    Raises:
        TypeError: a parameter cannot be encoded (from the JSON encoder).
        ValueError: a parameter is circular or a non-finite float under a strict encoder.
    """
    data = {
        "jsonrpc": "2.0",
        "method": method,
        "params": params,
        "id": request_id if request_id is not None else new_id(),
    }
    if encoder is not None:
        return encoder.encode(data).encode()
    return json.dumps(data, cls=cls).encode()


def format_server_error(error: Any) -> str:
    """A server error's message followed by its traceback (or other data)."""
    if not isinstance(error, Mapping):
        return str(error)
    text = str(error["message"]) if "message" in error else str(dict(error))
    data = error.get("data")
    if data:
        if isinstance(data, Mapping) and "traceback" in data:
            text += "\n" + str(data["traceback"])
        else:
            text += "\n" + str(data)
    return text


def parse_response(body: bytes | str | None, method: str, params: Any, url: str = "") -> Any:
    """The result of a JSON-RPC reply, or :class:`CommandError`.

    Accepts ``{"result": ...}`` alone (``id``/``jsonrpc`` are not checked, as upstream).
    Every malformed reply becomes a :class:`CommandError`; nothing else escapes.
    """
    if not body:
        raise CommandError(
            f'JSON response not received from JSONRPC function "{method}" with params {params}',
            url=url,
        )
    try:
        res = _loads(body)
    except (ValueError, TypeError, RecursionError) as exc:
        raise CommandError(
            f'Invalid JSON response from JSONRPC function "{method}" with params {params}',
            url=url,
            data=trim(body),
        ) from exc
    if not res:
        raise CommandError(
            f'JSON response not received from JSONRPC function "{method}" with params {params}',
            url=url,
        )
    if not isinstance(res, dict):
        raise CommandError(
            f'Unexpected JSON response from JSONRPC function "{method}" with params {params}',
            url=url,
            data=trim(body),
        )
    error = res.get("error")
    if error is not None:
        name = error.get("name", "Error") if isinstance(error, dict) else "Error"
        raise CommandError(
            f'Encountered {name} from JSONRPC function "{method}" with params {params}:\n'
            f"{format_server_error(error)}",
            url=url,
            code=error.get("code") if isinstance(error, dict) else None,
            data=error.get("data") if isinstance(error, dict) else error,
        )
    if "result" not in res:
        raise CommandError(
            f'JSON response without "result" from JSONRPC function "{method}" with params {params}',
            url=url,
            data=trim(body),
        )
    return res["result"]


@dataclass(frozen=True)
class ProcInfo:
    """One procedure listed by ``system.describe``.

    Attributes:
        name: the method name.
        params: the parameter names, in order (empty when the server gave none).
        doc: the server's description of the procedure ("" when none).
    """

    name: str
    params: tuple[str, ...] = ()
    doc: str = ""


def parse_describe(result: Any, url: str = "") -> list[ProcInfo]:
    """The procedures of a ``system.describe`` result.

    Only ``name`` is required (as upstream); ``params`` may be a list of names or of
    ``{"name": ...}`` objects (JSON-RPC 1.1 service description), the doc comes from
    ``doc``, ``summary`` or ``help``.

    Raises:
        CommandError: the result has no ``procs`` list or a proc has no name.
    """
    procs = result.get("procs") if isinstance(result, dict) else None
    if not isinstance(procs, list):
        raise CommandError(
            "system.describe result has no procs list", url=url, data=trim(repr(result))
        )
    found: list[ProcInfo] = []
    for proc in procs:
        if not isinstance(proc, dict) or not isinstance(proc.get("name"), str):
            raise CommandError(
                "system.describe listed a procedure without a name", url=url, data=trim(repr(proc))
            )
        names: list[str] = []
        raw = proc.get("params")
        if isinstance(raw, list):
            for p in raw:
                if isinstance(p, str):
                    names.append(p)
                elif isinstance(p, dict) and isinstance(p.get("name"), str):
                    names.append(p["name"])
        doc = ""
        for key in ("doc", "summary", "help"):
            value = proc.get(key)
            if isinstance(value, str) and value:
                doc = value
                break
        found.append(ProcInfo(proc["name"], tuple(names), doc))
    return found


def http_error(
    status: int,
    reason: str,
    body: bytes,
    content_type: str,
    url: str,
    service: str = "command",
) -> CommandError:
    """The :class:`CommandError` for an HTTP error status (data: the body, as JSON if typed so)."""
    text = (
        f"HTTP Error {status} {reason}; please check cryosparcm log {service} "
        "for additional information."
    )
    data: Any = body or None
    if body:
        text += f"\nResponse from server: {trim(body)}"
        if content_type.split(";")[0].strip().lower() == "application/json":
            try:
                data = json.loads(body)
            except (ValueError, RecursionError):
                data = body
    return CommandError(text, url=url, code=status, data=data)


# -- server side --------------------------------------------------------------------


class RpcFault(Exception):
    """A JSON-RPC error to send back (bad request, unknown method, bad params).

    Attributes:
        code: the JSON-RPC error code.
        name: the error name sent in ``error.name``.
        request_id: the call's id when it could be read, else None.
    """

    def __init__(
        self, code: int, message: str, *, name: str = "JSONRPCError", request_id: Any = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.name = name
        self.request_id = request_id


@dataclass
class Call:
    """One decoded JSON-RPC call.

    Attributes:
        method: the procedure name.
        args: positional params.
        kwargs: keyword params.
        request_id: the id to echo (None for a notification-style call without id).
    """

    method: str
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    request_id: Any = None


def decode_call(body: bytes) -> Call:
    """Decode a request body into a :class:`Call`.

    Raises:
        RpcFault: PARSE_ERROR for bad JSON, INVALID_REQUEST for a bad shape.
    """
    try:
        req = _loads(body)
    except (ValueError, RecursionError) as exc:
        raise RpcFault(PARSE_ERROR, f"Parse error: {exc}", name="ParseError") from None
    if not isinstance(req, dict):
        raise RpcFault(INVALID_REQUEST, "Invalid request: not a JSON object", name="InvalidRequest")
    request_id = req.get("id")
    method = req.get("method")
    if not isinstance(method, str) or not method:
        raise RpcFault(
            INVALID_REQUEST,
            "Invalid request: no method name",
            name="InvalidRequest",
            request_id=request_id,
        )
    params = req.get("params")
    if params is None:
        return Call(method, request_id=request_id)
    if isinstance(params, list):
        return Call(method, args=params, request_id=request_id)
    if isinstance(params, dict):
        return Call(method, kwargs=params, request_id=request_id)
    raise RpcFault(
        INVALID_PARAMS,
        "Invalid params: must be a list or an object",
        name="InvalidParams",
        request_id=request_id,
    )


def encode_result(
    request_id: Any,
    result: Any,
    cls: type[json.JSONEncoder] | None = None,
    encoder: json.JSONEncoder | None = None,
) -> bytes:
    """A JSON-RPC 2.0 success reply (*encoder*, an instance, wins over *cls*)."""
    data = {"jsonrpc": "2.0", "id": request_id, "result": result}
    if encoder is not None:
        return encoder.encode(data).encode()
    return json.dumps(data, cls=cls).encode()


def encode_error(
    request_id: Any,
    code: int,
    name: str,
    message: str,
    traceback: str | None = None,
) -> bytes:
    """A JSON-RPC error reply with the 1.1-style fields CryoSPARC sends."""
    error: dict[str, Any] = {"code": code, "name": name, "message": message}
    if traceback is not None:
        error["data"] = {"traceback": traceback}
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "error": error}).encode()


def describe_result(name: str, procs: Sequence[ProcInfo]) -> dict[str, Any]:
    """A ``system.describe`` result (JSON-RPC 1.1 service description shape)."""
    return {
        "sdversion": "1.0",
        "name": name,
        "procs": [
            {
                "name": p.name,
                "summary": p.doc.strip().split("\n", 1)[0] if p.doc else "",
                "doc": p.doc,
                "params": [{"name": n, "type": "any"} for n in p.params],
            }
            for p in procs
        ],
    }
