"""``Client``, ``SeriesInfo`` and ``ExportRequest``: drms's high-level API, on pandas.

``Client`` sits on :class:`~sciwire.drms.json.HttpJsonClient` (keep-alive, timeouts,
sciwire errors). ``query`` reads the rs_list answer keyword by keyword and converts each
numeric column as it is decoded (hex QUALITY included) before pandas sees it, instead of
building an all-strings frame and converting it afterwards: fewer copies and a lower
memory peak (see bench/drms.py). pandas is imported when a DataFrame is built.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sciwire.drms._pandas as _pandas
import sciwire.drms._protocol as P
from sciwire.drms._export_request import ExportRequest
from sciwire.drms.config import ServerConfig
from sciwire.drms.exceptions import DrmsOperationNotSupported, DrmsQueryError
from sciwire.drms.json import AsyncHttpJsonClient as AsyncHttpJsonClient
from sciwire.drms.json import HttpJsonClient
from sciwire.drms.json import HttpJsonRequest as HttpJsonRequest
from sciwire.drms.utils import _extract_series_name, _split_arg

__all__ = ["Client", "ExportRequest", "SeriesInfo"]

# HttpJsonClient (and HttpJsonRequest) are reachable here too, as in drms.client;
# AsyncHttpJsonClient too, from the time sciwire kept both clients in this module.

logger = logging.getLogger(__name__)

Names = str | Sequence[str] | None

# The keyword types drms converts to numbers (char keywords stay text, as in drms).
_NUMERIC_TYPES = frozenset({"short", "int", "longlong", "float", "double"})
_INTEGER_TYPES = ("short", "int", "longlong")
_REAL_TYPES = ("float", "double")

# Export colour tables and scalings JSOC knows (its jsoc.Color_Tables series).
_COLOR_TABLES = (
    "HMI_mag.lut",
    "aia_131.lut",
    "aia_1600.lut",
    "aia_1700.lut",
    "aia_171.lut",
    "aia_193.lut",
    "aia_211.lut",
    "aia_304.lut",
    "aia_335.lut",
    "aia_4500.lut",
    "aia_94.lut",
    "aia_mixed",
    "bb.sao",
    "grey.sao",
    "heat.sao",
)
_SCALINGS = ("LOG", "MINMAX", "MINMAXGIVEN", "SQRT", "mag")
_FILENAME_EXTENSIONS = (".fits", ".txt", ".jpg", ".mpg", ".mp4", ".tar")


def _frame(rows: list[tuple[Any, ...]], columns: Sequence[str]) -> Any:
    pd = _pandas.pandas()
    # an empty list gives a frame without the columns on old pandas; None keeps them
    frame = pd.DataFrame(rows or None, columns=list(columns))
    frame.index = frame.pop("name")
    return frame


class SeriesInfo:
    """The structure of one DRMS series (from ``jsoc_info?op=series_struct``).

    Attributes:
        name: the series name (lower case) or None.
        primekeys: the prime keywords.
        keywords: DataFrame of keywords (type, recscope, defval, units, note, linkinfo,
            is_time, is_integer, is_real, is_numeric), indexed by name.
        links: DataFrame of links (target, kind, note), indexed by name.
        segments: DataFrame of segments (type, units, protocol, dims, note).
        note, dbindex, retention, unitsize, archive, tapegroup: as JSOC reports them.
    """

    def __init__(self, d: Mapping[str, Any], *, name: str | None = None) -> None:
        self._d = d
        self.name = name
        self.retention = d.get("retention")
        self.unitsize = d.get("unitsize")
        self.archive = d.get("archive")
        self.tapegroup = d.get("tapegroup")
        self.note = d.get("note")
        self.primekeys: Any = d.get("primekeys")
        self.dbindex: Any = d.get("dbindex")
        self.keywords = self._parse_keywords(d["keywords"])
        self.links = self._parse_links(d["links"])
        self.segments = self._parse_segments(d["segments"])

    @functools.cached_property
    def _numeric_types(self) -> dict[str, str]:
        """Keyword name -> DRMS type of the numeric keywords (Client.query's), read out
        of the keywords DataFrame once per series, not on every query."""
        kw = self.keywords
        pairs = zip(kw.index, kw["type"], strict=True)
        return {k: t for k, t in pairs if t in _NUMERIC_TYPES}

    @staticmethod
    def _parse_keywords(d: Iterable[Mapping[str, Any]]) -> Any:
        keys = ("name", "type", "recscope", "defval", "units", "note", "linkinfo")
        res = _frame([tuple(item.get(k) for k in keys) for item in d], keys)
        kind = res["type"]
        res["is_time"] = kind == "time"
        res["is_integer"] = kind.isin(_INTEGER_TYPES)
        res["is_real"] = kind.isin(_REAL_TYPES)
        res["is_numeric"] = res["is_integer"] | res["is_real"]
        return res

    @staticmethod
    def _parse_links(d: Iterable[Mapping[str, Any]]) -> Any:
        keys = ("name", "target", "kind", "note")
        return _frame([tuple(item.get(k) for k in keys) for item in d], keys)

    @staticmethod
    def _parse_segments(d: Iterable[Mapping[str, Any]]) -> Any:
        keys = ("name", "type", "units", "protocol", "dims", "note")
        return _frame([tuple(item.get(k) for k in keys) for item in d], keys)

    def __repr__(self) -> str:
        return "<SeriesInfo>" if self.name is None else f"<SeriesInfo: {self.name}>"


class Client:
    """Access to a DRMS server: series lists, series info, record queries, exports.

    Args:
        server: a registered server name (``jsoc``, ``kis``), a base URL, or a ServerConfig.
        email: the default address for export requests (checked with the server).
        verbose: log progress (export waits, downloads) at INFO instead of DEBUG.
        timeout: seconds for connecting and for each whole answer (each read of a download).
    """

    def __init__(
        self,
        server: str | ServerConfig = "jsoc",
        *,
        email: str | None = None,
        verbose: bool = False,
        timeout: float | None = 60.0,
    ) -> None:
        self._json = HttpJsonClient(server, timeout=timeout)
        self._info_cache: dict[str | None, SeriesInfo] = {}
        self.verbose = verbose
        self._email: str | None = None
        self.email = email  # checked by the property

    def __repr__(self) -> str:
        return f"<Client: {self._server.name}>"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the kept-alive connection (the client still works afterwards)."""
        self._json.close()

    def _log(self, msg: str, *args: Any) -> None:
        logger.log(logging.INFO if self.verbose else logging.DEBUG, msg, *args)

    @property
    def _server(self) -> ServerConfig:
        """The server configuration in use."""
        return self._json.server

    def _require(self, op: str, what: str) -> None:
        if not self._server.check_supported(op):
            raise DrmsOperationNotSupported(f"Server does not support {what}")

    @property
    def email(self) -> str | None:
        """The default export address; setting it checks that the server knows it."""
        return self._email

    @email.setter
    def email(self, value: str | None) -> None:
        if value is not None and not self.check_email(value):
            raise ValueError("Email address is invalid or not registered")
        self._email = value

    def check_email(self, email: str) -> bool:
        """Whether *email* is registered with the server for exports."""
        self._require("email", "user emails")
        status = self._json.check_address(email).get("status")
        try:
            return status is not None and int(status) == 2
        except (TypeError, ValueError):
            return False

    def series(self, regex: str | None = None, *, full: bool = False) -> Any:
        """The server's series names (matching *regex*), or a DataFrame when *full*."""
        self._require("series", "series list access")
        if self._server.url_show_series_wrapper is None:
            d = P.check_query_status(self._json.show_series(ds_filter=regex))
            names = d.get("names") or []
            if full:
                pd = _pandas.pandas()
                cols = ("name", "primekeys", "note")
                rows = [(it["name"], _split_arg(it["primekeys"]), it["note"]) for it in names]
                return pd.DataFrame(rows, columns=cols) if rows else pd.DataFrame(columns=cols)
            return [it["name"] for it in names]
        d = self._json.show_series_wrapper(ds_filter=regex, info=full)
        found = d.get("seriesList") or []
        if full:
            pd = _pandas.pandas()
            notes = []
            for item in found:
                name, info = next(iter(item.items()))
                notes.append((name, info.get("description", "")))
            two = ("name", "note")
            return pd.DataFrame(notes, columns=two) if notes else pd.DataFrame(columns=two)
        return list(found)

    def info(self, ds: str) -> SeriesInfo:
        """The structure of the series *ds* names (cached per series)."""
        self._require("info", "series info access")
        name = _extract_series_name(ds)
        if name is not None:
            name = name.lower()
        if name in self._info_cache:
            return self._info_cache[name]
        d = P.check_query_status(self._json.series_struct(name or ""))
        si = SeriesInfo(d, name=name)
        if name is not None:
            self._info_cache[name] = si
        return si

    def keys(self, ds: str) -> list[str]:
        """The keyword names of the series."""
        return list(self.info(ds).keywords.index)

    def pkeys(self, ds: str) -> list[str]:
        """The prime keyword names of the series."""
        return list(self.info(ds).primekeys)

    def _types(self, ds: str, skip_conversion: str | Sequence[str] | None) -> dict[str, str]:
        """Keyword name -> DRMS type for the columns to convert to numbers."""
        types = dict(self.info(ds)._numeric_types)
        if isinstance(skip_conversion, str):
            skip_conversion = [skip_conversion]
        for name in skip_conversion or ():
            types[name] = "string"  # a type, so even *recnum* & co. stay text
        return types

    def query(
        self,
        ds: str,
        *,
        key: Names = None,
        seg: Names = None,
        link: Names = None,
        convert_numeric: bool = True,
        skip_conversion: str | Sequence[str] | None = None,
        pkeys: bool = False,
        rec_index: bool = False,
        n: int | None = None,
    ) -> Any:
        """Keywords, segments and/or links of a record set, as DataFrames.

        Args:
            ds: the record-set query.
            key: keywords to return (a comma-separated string or a list).
            seg: segments to return.
            link: links to return.
            convert_numeric: numeric keywords become numbers (MISSING -> NaN, hex QUALITY
                -> int); other keywords stay text.
            skip_conversion: keywords to leave as text.
            pkeys: put the series' prime keywords first among the keywords.
            rec_index: index the frames by record name.
            n: the first *n* records (last ``-n`` when negative).

        Returns:
            One DataFrame per kind asked (keywords, segments, links, in that order): the
            frame itself when one kind was asked, a tuple for several, None for none.
        """
        self._require("query", "DRMS queries")
        pd = _pandas.pandas()
        if pkeys:
            pk = self.pkeys(ds)
            key = pk + [k for k in (_split_arg(key) if key is not None else []) if k not in pk]
        url = P.rs_list_url(self._server, ds, key=key, seg=seg, link=link, recinfo=rec_index, n=n)
        body = self._json._raw(url)
        types: dict[str, str] = {}
        if key is not None and convert_numeric:
            try:
                types = self._types(ds, skip_conversion)
            except DrmsQueryError:
                # a failed query says why in its own answer; report that one first
                P.rs_list_split(body, None, self._server.encoding)
                raise
        columns, rest = P.rs_list_split(body, types, self._server.encoding)
        del body
        res = []
        if key is not None:
            res.append(pd.DataFrame(columns) if columns is not None else pd.DataFrame())
            del columns
        for kind, asked in (("segments", seg), ("links", link)):
            if asked is not None:
                items = rest.get(kind)
                if items is None:
                    res.append(pd.DataFrame())
                else:
                    res.append(pd.DataFrame({it["name"]: it["values"] for it in items}))
        if rec_index:
            index = [it["name"] for it in rest.get("recinfo") or ()]
            for frame in res:
                frame.index = index
        if not res:
            return None
        return res[0] if len(res) == 1 else tuple(res)

    def _generate_filenamefmt(self, sname: str | None) -> str | None:
        """The export file name format drms derives from the series' prime keys."""
        try:
            si = self.info(sname or "")
        except Exception as exc:
            logger.warning("Cannot generate filename format for series %r: %s", sname, exc)
            return None
        parts = [f"{{{k}:A}}" if si.keywords.loc[k].is_time else f"{{{k}}}" for k in si.primekeys]
        if parts:
            return f"{si.name}.{'.'.join(parts)}.{{segment}}"
        return f"{si.name}.{{recnum:%lld}}.{{segment}}"

    _re_export_recset = re.compile(r"^\s*([\w.]+)\s*(\[.*\])?\s*(?:\{([\w\s.,]*)\})?\s*$")
    _re_export_recset_pkeys = re.compile(r"\[([^\[\]]*)\]")
    _re_export_recset_slist = P.NAME_SEPARATORS  # drms's name for the same pattern

    @staticmethod
    def _parse_export_recset(rs: str | None) -> tuple[Any, Any, Any]:
        """(series, [primekey values], [segments]) of an export record, Nones if unparsable."""
        m = Client._re_export_recset.match(rs) if rs is not None else None
        if m is None:
            return None, None, None
        sname, pkeys, segs = m.groups()
        if pkeys is not None:
            pkeys = Client._re_export_recset_pkeys.findall(pkeys)
        if segs is not None:
            segs = Client._re_export_recset_slist.split(segs)
        return sname, pkeys, segs

    def _filename_from_export_record(self, rs: str, *, old_fname: str | None = None) -> str | None:
        """A local file name made from an export record (time punctuation removed)."""
        sname, pkeys, segs = self._parse_export_recset(rs)
        if sname is None:
            return None
        try:
            si = self.info(sname)
        except Exception as exc:
            logger.warning("Cannot generate filename for series %r: %s", sname, exc)
            return None
        parts = [str(si.name)]
        if pkeys is not None:
            if len(pkeys) != len(si.primekeys):
                return None
            for i, value in enumerate(pkeys):
                if si.keywords.loc[si.primekeys[i]].is_time:
                    pkeys[i] = value.replace(".", "").replace(":", "").replace("-", "")
            parts += [k for k in pkeys if k.strip()]
        if segs is not None:
            parts += [s for s in segs if s.strip()]
        fname = ".".join(parts)
        if old_fname is not None:
            for ext in _FILENAME_EXTENSIONS:
                if old_fname.endswith(ext):
                    return fname + ext
        return fname

    _export_color_table_names = _COLOR_TABLES
    _export_scaling_names = _SCALINGS

    @staticmethod
    def _validate_export_protocol_args(protocol_args: dict[str, Any] | None) -> None:
        """Check (and canonicalise the case of) ``ct``/``CT`` and ``scaling``; ValueError."""
        if protocol_args is None:
            return
        ct_key = "ct" if protocol_args.get("ct") is not None else "CT"
        checks = ((ct_key, _COLOR_TABLES, "color table"), ("scaling", _SCALINGS, "scaling type"))
        for key, names, what in checks:
            value = protocol_args.get(key)
            if value is None:
                continue
            lowered = [s.lower() for s in names]
            if str(value).lower() not in lowered:
                raise ValueError(f"{value} is not a valid {what}, available: {', '.join(names)}")
            protocol_args[key] = names[lowered.index(str(value).lower())]

    def export(
        self,
        ds: str,
        *,
        method: str = "url_quick",
        protocol: str = "as-is",
        protocol_args: dict[str, Any] | None = None,
        filenamefmt: str | bool | None = None,
        n: int | None = None,
        email: str | None = None,
        requester: str | bool | None = None,
        process: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> ExportRequest:
        """Submit an export request (see HttpJsonClient.exp_request for the arguments).

        *email* defaults to :attr:`email`; *filenamefmt* None derives one from the
        series' prime keys, False sends none; *requester* False sends none.

        Raises:
            ValueError: no email address, or bad protocol arguments.
            DrmsOperationNotSupported: the server has no exports.
        """
        self._require("export", "export requests")
        if email is None:
            if self._email is None:
                raise ValueError(
                    "The email argument is required, when no default email address was set."
                )
            email = self._email
        if filenamefmt is None:
            fmt = self._generate_filenamefmt(_extract_series_name(ds))
        else:
            fmt = None if filenamefmt is False else str(filenamefmt)
        if protocol.lower() in ("jpg", "mpg", "mp4"):
            self._validate_export_protocol_args(protocol_args)
        d = self._json.exp_request(
            ds,
            email,
            method=method,
            protocol=protocol,
            protocol_args=protocol_args,
            filenamefmt=fmt,
            n=n,
            requester=requester,
            process=process,
        )
        return ExportRequest(d, client=self)

    def export_from_id(self, requestid: str) -> ExportRequest:
        """An :class:`ExportRequest` for an existing request id (e.g. from the web page)."""
        self._require("export", "export requests")
        return ExportRequest._create_from_id(requestid, client=self)
