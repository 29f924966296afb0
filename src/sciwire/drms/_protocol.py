"""Sans-I/O core of the JSOC HTTP/JSON CGI protocol.

URL builders for every CGI operation (byte-identical to the drms package's requests
for the same arguments, except that exports carry ``requestor``, the parameter JSOC
reads, where drms 0.7+ sends ``requester``), response decoding with status checks,
export-status classification and typed decoding of rs_list keyword columns. No
sockets, no threads, no clock.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from enum import Enum
from itertools import repeat
from typing import Any
from urllib.parse import quote, quote_plus

from sciwire import __version__
from sciwire.core.jsonfast import loads
from sciwire.drms.config import ServerConfig
from sciwire.drms.exceptions import DrmsExportError, DrmsQueryError
from sciwire.errors import RemoteProtocolError

__all__ = [
    "EXPORT_FAILED",
    "EXPORT_METHODS",
    "EXPORT_PENDING",
    "EXPORT_PROCESSES",
    "EXPORT_PROTOCOLS",
    "USER_AGENT",
    "JsocInfoConstants",
    "check_address_url",
    "check_export_status",
    "check_query_status",
    "decode_json",
    "download_urls",
    "exp_request_url",
    "exp_status_url",
    "keyword_columns",
    "plain_name",
    "record_filename",
    "rs_list_columns",
    "rs_list_split",
    "rs_list_url",
    "rs_summary_url",
    "series_name",
    "series_struct_url",
    "show_series_url",
    "show_series_wrapper_url",
    "split_arg",
]

#: User-Agent sent with every request: the client and the Python version.
USER_AGENT = f"sciwire-drms/{__version__}, python/{sys.version[:5]}"

#: Export methods JSOC accepts (ftp ones are long retired on JSOC but still valid syntax).
EXPORT_METHODS = ("url_quick", "url", "url-tar", "ftp", "ftp-tar")
_IMG_PROTOCOLS = ("jpg", "mpg", "mp4")
#: Export protocols.
EXPORT_PROTOCOLS = ("as-is", "fits", *_IMG_PROTOCOLS)
#: Processing steps JSOC's exporter knows.
EXPORT_PROCESSES = (
    "im_patch",
    "resize",
    "rebin",
    "aia_scale_aialev1",
    "aia_scale_orig",
    "aia_scale_other",
    "Maproj",
    "HmiB2ptr",
)
#: exp_status codes meaning "not done yet": processing, queued, queued (12), not yet visible.
EXPORT_PENDING = frozenset({1, 2, 12, 6})
#: exp_status codes meaning the export failed for good.
EXPORT_FAILED = frozenset({3, 4, 5, 7})

#: what separates names in a keyword/segment list (commas and white space)
NAME_SEPARATORS = re.compile(r"[\s,]+")


class JsocInfoConstants(str, Enum):
    """Pseudo keyword names understood by jsoc_info."""

    all = "**ALL**"
    none = "**NONE**"
    recdir = "*recdir*"
    dirmtime = "*dirmtime*"
    logdir = "*logdir*"
    recnum = "*recnum*"
    sunum = "*sunum*"
    size = "*size*"
    online = "*online*"
    retain = "*retain*"
    archive = "*archive*"


def split_arg(arg: str | Iterable[str]) -> list[str]:
    """Split a comma/whitespace separated string into names; pass sequences through."""
    if isinstance(arg, str):
        return [it for it in NAME_SEPARATORS.split(arg) if it]
    return [str(a.value) if isinstance(a, JsocInfoConstants) else str(a) for a in arg]


#: the series name at the start of a record-set query
SERIES_NAME = re.compile(r"^\s*([\w.]+)")


def series_name(ds: str) -> str:
    """The (lower-case) series name at the start of a record-set query."""
    m = SERIES_NAME.match(ds)
    if m is None:
        raise ValueError(f"No series name in record set {ds!r}")
    return m.group(1).lower()


_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")
# quote_plus(c, safe="") for every ASCII character, as one str.translate table
_PLUS_TABLE = {
    i: (chr(i) if chr(i) in _SAFE else "+" if i == 32 else f"%{i:02X}") for i in range(128)
}


def _quote_plus(text: str) -> str:
    if text.isascii():
        return text.translate(_PLUS_TABLE)
    return quote_plus(text, safe="")


def _q(params: Mapping[str, str]) -> str:
    """``"?" + urlencode(params)``, byte for byte, at a fraction of the cost."""
    return "?" + "&".join(_quote_plus(k) + "=" + _quote_plus(v) for k, v in params.items())


def show_series_url(server: ServerConfig, ds_filter: str | None = None) -> str:
    """URL of ``show_series`` (optionally with a name filter regex)."""
    url = server.require("series", "url_show_series")
    return url if ds_filter is None else url + _q({"filter": ds_filter})


def show_series_wrapper_url(
    server: ServerConfig, ds_filter: str | None = None, *, info: bool = False
) -> str:
    """URL of ``showextseries`` (the wrapper listing every public series)."""
    url = server.require("series", "url_show_series_wrapper")
    params = {"dbhost": str(server.show_series_wrapper_dbhost)}
    if ds_filter is not None:
        params["filter"] = ds_filter
    if info:
        params["info"] = "1"
    return url + _q(params)


def series_struct_url(server: ServerConfig, ds: str) -> str:
    """URL of ``jsoc_info?op=series_struct``."""
    return server.require("info", "url_jsoc_info") + "?op=series_struct&ds=" + _quote_plus(ds)


def rs_summary_url(server: ServerConfig, ds: str) -> str:
    """URL of ``jsoc_info?op=rs_summary``."""
    # _q({"op": "rs_summary", "ds": ds}) without building a dict per URL
    return server.require("query", "url_jsoc_info") + "?op=rs_summary&ds=" + _quote_plus(ds)


def rs_list_url(
    server: ServerConfig,
    ds: str,
    *,
    key: str | Sequence[str] | None = None,
    seg: str | Sequence[str] | None = None,
    link: str | Sequence[str] | None = None,
    recinfo: bool = False,
    n: int | None = None,
    uid: str | None = None,
) -> str:
    """URL of ``jsoc_info?op=rs_list``; at least one of key, seg, link is required."""
    if key is None and seg is None and link is None:
        raise ValueError("At least one key, seg or link must be specified")
    params = {"op": "rs_list", "ds": ds}
    for name, value in (("key", key), ("seg", seg), ("link", link)):
        if value is not None:
            params[name] = ",".join(split_arg(value))
    if recinfo:
        params["R"] = "1"
    if n is not None:
        params["n"] = str(int(n))
    if uid is not None:
        params["userhandle"] = uid
    return server.require("query", "url_jsoc_info") + _q(params)


def check_address_url(server: ServerConfig, email: str) -> str:
    """URL of ``checkAddress.sh`` (the address is quote_plus'd, then urlencoded, as drms does)."""
    url = server.require("email", "url_check_address")
    return url + _q({"address": quote_plus(email), "checkonly": "1"})


def _protocol_string(protocol: str, protocol_args: Mapping[str, Any] | None) -> str:
    if protocol not in _IMG_PROTOCOLS:
        if protocol_args is not None:
            raise ValueError(f"protocol_args not supported for protocol {protocol}")
        return protocol
    extra: dict[str, Any] = {"ct": "grey.sao", "scaling": "MINMAX", "size": 1}
    for k, v in (protocol_args or {}).items():
        if k.lower() == "ct":
            extra["ct"] = v
        elif k == "scaling":
            extra["scaling"] = v
        elif k == "size":
            extra["size"] = int(v)
        elif k in ("min", "max"):
            extra[k] = float(v)
        else:
            raise ValueError(f"Unknown protocol argument: {k}")
    text = f"{protocol},CT={extra['ct']},scaling={extra['scaling']},size={extra['size']}"
    for k in ("min", "max"):
        if k in extra:
            text += f",{k}={extra[k]:g}"
    return text


def exp_request_url(
    server: ServerConfig,
    ds: str,
    notify: str,
    *,
    method: str = "url_quick",
    protocol: str = "as-is",
    protocol_args: Mapping[str, Any] | None = None,
    filenamefmt: str | None = None,
    n: int | None = None,
    process: Mapping[str, Mapping[str, Any]] | None = None,
    requestor: str | bool | None = None,
) -> str:
    """URL of ``jsoc_fetch?op=exp_request``.

    ``requestor`` defaults to the local part of *notify*; ``False`` omits it. It is
    sent as ``requestor`` (what JSOC reads), not drms's ``requester``.
    """
    method = method.lower()
    if method not in EXPORT_METHODS:
        raise ValueError(
            f"Method {method} is not supported, valid methods are: {', '.join(EXPORT_METHODS)}"
        )
    protocol = protocol.lower()
    if protocol not in EXPORT_PROTOCOLS:
        raise ValueError(
            f"Protocol {protocol} is not supported, valid protocols are: "
            f"{', '.join(EXPORT_PROTOCOLS)}"
        )
    # url_quick only makes sense for as-is files; JSOC wants url for anything converted.
    if method == "url_quick" and protocol != "as-is":
        method = "url"
    params = {
        "op": "exp_request",
        "format": "json",
        "ds": ds,
        "notify": notify,
        "method": method,
        "protocol": _protocol_string(protocol, protocol_args),
    }
    if filenamefmt is not None:
        params["filenamefmt"] = filenamefmt
    steps = str(int(n) if n is not None else 0)
    if process is not None:
        parts = []
        for name, opts in process.items():
            if name not in EXPORT_PROCESSES:
                raise ValueError(
                    f"{name} is not one of the allowed processing options: {list(EXPORT_PROCESSES)}"
                )
            parts.append(name + "," + ",".join(f"{k}={v}" for k, v in opts.items()))
        steps += "|" + "|".join(parts)
    # The key really is "process=n" (urlencoded as process%3Dn), as drms sends it.
    params["process=n"] = steps
    if requestor is None:
        params["requestor"] = notify.split("@")[0]
    elif requestor is not False:
        params["requestor"] = str(requestor)
    return server.require("export", "url_jsoc_fetch") + _q(params)


def exp_status_url(server: ServerConfig, requestid: str) -> str:
    """URL of ``jsoc_fetch?op=exp_status``."""
    url = server.require("export", "url_jsoc_fetch")
    return url + "?op=exp_status&requestid=" + _quote_plus(requestid)


def decode_json(body: bytes, encoding: str = "latin1") -> dict[str, Any]:
    """Decode a CGI answer into a dict.

    Raises:
        RemoteProtocolError: the body is not JSON or not a JSON object.
    """
    try:
        text = body.decode(encoding)
        data = loads(text)
    except (UnicodeDecodeError, LookupError, ValueError) as exc:
        raise RemoteProtocolError("JSOC answered with invalid JSON", body) from exc
    if not isinstance(data, dict):
        raise RemoteProtocolError("JSOC answered with a JSON value that is not an object", body)
    return data


def _status(d: Mapping[str, Any]) -> int | None:
    value = d.get("status")
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def check_query_status(d: Mapping[str, Any]) -> Mapping[str, Any]:
    """Return *d* when its status is 0; raise DrmsQueryError with JSOC's message otherwise."""
    status = _status(d)
    if status == 0:
        return d
    msg = d.get("error") or d.get("errmsg") or d.get("errMsg") or "DRMS Query failed."
    raise DrmsQueryError(f"{msg} [status={d.get('status')}]", code=status, data=dict(d))


def check_export_status(d: Mapping[str, Any]) -> int:
    """Return the export status code; raise DrmsExportError for a failed export.

    Statuses 3 (too large), 4 (error), 5 (expired), 7 (pending limit) and anything
    unknown raise; 0 (finished), 1/2/12 (processing/queued) and 6 (not found yet) return.
    """
    status = _status(d)
    if status is not None and (status == 0 or status in EXPORT_PENDING):
        return status
    msg = d.get("error") or "DRMS export request failed."
    raise DrmsExportError(f"{msg} [status={d.get('status')}]", code=status, data=dict(d))


_RECORD = re.compile(r"^\s*([\w.]+)\s*((?:\[[^\]]*\])*)\s*(?:\{([^}]*)\})?\s*$")


def record_filename(record: str, filename: str) -> str | None:
    """A local file name made from an export record, as drms does for url_quick.

    ``hmi.v_45s[2016.04.01_00:00:00_TAI][2]{Dopplergram}`` with ``.../Dopplergram.fits``
    gives ``hmi.v_45s.20160401_000000_TAI.2.Dopplergram.fits``; None if unparsable.
    """
    m = _RECORD.match(record or "")
    if m is None:
        return None
    parts = [m.group(1)]
    for value in re.findall(r"\[([^\]]*)\]", m.group(2)):
        value = value.strip()
        if ":" in value or value.upper().endswith(("_TAI", "_UTC")):
            value = value.replace(".", "").replace(":", "").replace("-", "")
        if value:
            parts.append(value)
    parts += [seg for seg in re.split(r"[\s,]+", m.group(3) or "") if seg]
    ext = "." + filename.rsplit(".", 1)[-1] if "." in filename.rsplit("/", 1)[-1] else ""
    return ".".join(parts).replace("/", "_") + ext


def plain_name(name: str) -> str:
    """*name* if it is one plain file name, else DrmsExportError (never a path)."""
    if not name or name in (".", "..") or any(c in name for c in "/\\\x00"):
        raise DrmsExportError(f"refusing the server's file name {name!r}: not a plain file name")
    return name


def download_urls(server: ServerConfig, export: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(local filename, URL) of every file of a finished export (or url_quick answer).

    Files are at ``http_download_baseurl + dir + "/" + filename``; an empty ``dir``
    means each filename is already a full path (url_quick), and then the local name
    is made from the record (server names like ``Dopplergram.fits`` repeat); tar
    exports offer the one tarfile. Entries named ``NoDataFile`` are skipped, and
    local names are made unique (``name.1``, ``name.2``...). A file name that is not a
    plain name (empty, ``.``, ``..``, a path) raises DrmsExportError.
    """
    base = server.http_download_baseurl
    if base is None:
        raise DrmsExportError(f"Server {server.name!r} has no http_download_baseurl")
    base = str(base).rstrip("/") + "/"
    directory = str(export.get("dir") or "").strip("/")
    tarfile = export.get("tarfile")
    items: list[tuple[str, str]]  # (record, path)
    if tarfile:
        items = [("", str(tarfile))]
        directory = ""
    else:
        items = [
            (str(item.get("record", "")), str(item.get("filename", "")))
            for item in export.get("data") or ()
        ]
    from_record = not directory and not tarfile
    out = []
    taken: set[str] = set()
    for record, path in items:
        if path == "NoDataFile" or path.endswith("/NoDataFile"):
            continue
        if directory:
            plain_name(path)  # files of an export folder are named plainly in it
        full = f"{directory}/{path}" if directory else path.lstrip("/")
        name = (record_filename(record, path) if from_record else None) or full.rsplit("/")[-1]
        plain_name(name)
        unique, i = name, 0
        while unique in taken:
            i += 1
            unique = f"{name}.{i}"
        taken.add(unique)
        out.append((unique, base + quote(full, safe="/:")))
    return out


_INT_TYPES = frozenset({"short", "int", "longlong", "char"})
_REAL_TYPES = frozenset({"float", "double"})


def _to_int(values: list[str]) -> list[int | float]:
    # Fast paths run at C speed through map(); the loop only runs for columns holding
    # MISSING or other non-numbers.
    try:
        return list(map(int, values))
    except ValueError:
        pass
    try:
        return list(map(int, values, repeat(0)))  # hex (0x...) and decimal alike
    except ValueError:
        pass
    out: list[int | float] = []
    append = out.append
    for v in values:
        try:
            append(int(v, 0) if v[:2] in ("0x", "0X") else int(v))
        except ValueError:
            try:
                append(float(v))  # "1e3", "1.5": numbers all the same, as pandas reads them
            except ValueError:
                append(math.nan)  # MISSING and other non-numbers
    return out


def _to_float(values: list[str]) -> list[float]:
    try:
        return list(map(float, values))  # the common case: no scan for MISSING first
    except ValueError:
        pass
    if "MISSING" in values:
        values = ["nan" if v == "MISSING" else v for v in values]
        try:
            return list(map(float, values))
        except ValueError:
            pass
    out: list[float] = []
    append = out.append
    for v in values:
        try:
            append(float(v))
        except ValueError:
            append(math.nan)
    return out


def _column(name: str, values: list[Any], types: Mapping[str, str]) -> list[Any]:
    kind = types.get(name)
    # the pseudo-keywords are numbers unless *types* names them (e.g. to skip them)
    if kind in _INT_TYPES or (kind is None and name in ("*recnum*", "*sunum*", "*size*")):
        return _to_int(values)
    if kind in _REAL_TYPES:
        return _to_float(values)
    if len(values) > 64 and len(set(values[:64])) <= 4:
        distinct = set(values)
        if len(distinct) <= 16:
            # a near-constant text column (TELESCOP...): one shared object per value
            canon = {v: v for v in distinct}
            return list(map(canon.__getitem__, values))
    return values


def keyword_columns(
    d: dict[str, Any], types: Mapping[str, str] | None = None, *, consume: bool = True
) -> dict[str, list[Any]]:
    """Typed columns from a decoded rs_list answer: ``{keyword: values}``.

    With *types* (keyword -> DRMS type from series_struct), integer keywords become
    ints (hex such as ``0x00000400`` included), real keywords floats, and values that
    are not numbers (``MISSING``, ``Invalid KeyLink``) become NaN; other keywords stay
    strings. With *consume* the string lists are released from *d* as each column is
    converted, which keeps peak memory near that of the decoded JSON.
    """
    out: dict[str, list[Any]] = {}
    types = types or {}
    for item in d.get("keywords") or ():
        name = item["name"]
        values = item["values"]
        if consume:
            item["values"] = None
        out[name] = _column(name, values, types)
        del values
    return out


_DECODER = json.JSONDecoder()
_KEYWORDS_HEAD = re.compile(r'\s*\{\s*"keywords"\s*:\s*\[\s*')
_WS = re.compile(r"\s*")


def rs_list_columns(
    body: bytes, types: Mapping[str, str] | None = None, encoding: str = "latin1"
) -> dict[str, list[Any]]:
    """Typed keyword columns straight from an rs_list answer body.

    Same result as ``keyword_columns(check_query_status(decode_json(body)), types)``,
    but each keyword object is decoded and converted in turn, so the string values of
    only one column are alive at a time: faster and with a lower memory peak on large
    answers. Raises DrmsQueryError for a failed query, RemoteProtocolError for bad JSON.
    """
    columns, _rest = rs_list_split(body, types, encoding)
    return columns if columns is not None else {}


def rs_list_split(
    body: bytes, types: Mapping[str, str] | None = None, encoding: str = "latin1"
) -> tuple[dict[str, list[Any]] | None, dict[str, Any]]:
    """An rs_list answer as (typed keyword columns, the rest of the answer).

    The columns are None when the answer has no ``keywords`` entry (no records, or no
    keywords asked); the rest holds ``segments``, ``links``, ``recinfo``, ``count``...
    Raises DrmsQueryError for a failed query, RemoteProtocolError for bad JSON.
    """
    types = types or {}
    try:
        text = body.decode(encoding)
    except (UnicodeDecodeError, LookupError) as exc:
        raise RemoteProtocolError("JSOC answered with undecodable text", body) from exc
    head = _KEYWORDS_HEAD.match(text)
    if head is None:  # not keywords-first (or an error answer): take the general path
        d = decode_json(body, encoding)
        check_query_status(d)
        if "keywords" not in d:
            return None, d
        columns = keyword_columns(d, types)
        del d["keywords"]
        return columns, d
    out: dict[str, list[Any]] = {}
    idx = head.end()
    try:
        if text[idx] != "]":
            while True:
                item, idx = _DECODER.raw_decode(text, idx)
                name, values = item["name"], item["values"]
                if not isinstance(name, str) or not isinstance(values, list):
                    raise TypeError("keyword entry without name and values")
                out[name] = _column(name, values, types)
                del item, values
                idx = _WS.match(text, idx).end()  # type: ignore[union-attr]
                if text[idx] == ",":
                    idx = _WS.match(text, idx + 1).end()  # type: ignore[union-attr]
                    continue
                if text[idx] != "]":
                    raise ValueError(f"unexpected {text[idx]!r} after a keyword entry")
                break
        tail_start = _WS.match(text, idx + 1).end()  # type: ignore[union-attr]
        if text[tail_start] == ",":
            rest = _DECODER.decode("{" + text[tail_start + 1 :])
        elif text[tail_start:].strip() == "}":
            rest = {}
        else:
            raise ValueError("unexpected text after the keywords")
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise RemoteProtocolError("JSOC answered with a malformed rs_list", body) from exc
    if not isinstance(rest, dict):
        raise RemoteProtocolError("JSOC answered with a malformed rs_list", body)
    check_query_status(rest)
    return out, rest
