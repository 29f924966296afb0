"""Helpers with drms.utils' names: JSOC time strings, argument splitting, requests.

pandas is imported by the functions that build pandas objects, not by this module.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any
from urllib.request import Request

import sciwire.drms._pandas as _pandas
from sciwire.drms._protocol import NAME_SEPARATORS, SERIES_NAME, USER_AGENT

__all__ = ["create_request_with_header", "to_datetime"]


def create_request_with_header(url: str) -> Request:
    """A :class:`urllib.request.Request` for *url* carrying sciwire's drms User-Agent."""
    request = Request(url)
    request.add_header("User-Agent", USER_AGENT)
    return request


def _split_arg(arg: str | Iterable[str]) -> list[str]:
    """Split a comma/whitespace separated string into names; other iterables become lists."""
    if isinstance(arg, str):
        return [part for part in NAME_SEPARATORS.split(arg) if part]
    return list(arg)


def _extract_series_name(ds: str) -> str | None:
    """The series name at the start of a record-set query, or None."""
    m = SERIES_NAME.match(ds)
    return m.group(1) if m is not None else None


def _pandas_major() -> int:
    pd = _pandas.pandas()
    return int(str(pd.__version__).split(".", 1)[0])


def _pd_to_datetime_coerce(arg: Any) -> Any:
    """``pandas.to_datetime`` with unparsable values as NaT (mixed formats allowed)."""
    pd = _pandas.pandas()
    if _pandas_major() >= 2:
        try:
            # mixed UTC offsets: pandas 3 raises ValueError, pandas 2 warns (FutureWarning)
            # and returns objects; both then parse with utc=True
            with warnings.catch_warnings():
                warnings.simplefilter("error", FutureWarning)
                return pd.to_datetime(arg, errors="coerce", format="mixed", dayfirst=False)
        except (ValueError, FutureWarning):
            return pd.to_datetime(arg, errors="coerce", format="mixed", utc=True)
    return pd.to_datetime(arg, errors="coerce")


def _pd_to_numeric_coerce(arg: Any) -> Any:
    """``pandas.to_numeric`` with unparsable values as NaN."""
    return _pandas.pandas().to_numeric(arg, errors="coerce")


def _in_ns_range(res: Any) -> Any:
    """NaT for times outside datetime64[ns] (1677-2262), on every pandas.

    pandas 2 parsed into nanoseconds, where such years fail and become NaT; pandas 3
    parses into microseconds and keeps them. drms's users (and its tests) expect the
    former, so both pandas versions give it here.
    """
    pd = _pandas.pandas()
    low, high = pd.Timestamp.min, pd.Timestamp.max
    outside = (res < low) | (res > high)
    if outside.any():
        res = res.mask(outside)
    return res


def to_datetime(tstr: Any, *, force: bool = False) -> Any:
    """Parse JSOC time strings into pandas timestamps (naive; the time scale is dropped).

    ``2010.05.01_12:00:00_TAI`` style strings are rewritten to ISO form first (when any
    value ends with ``_TAI``, or always with *force*); ISO strings with ``Z`` parse as
    they are. Unparsable values and years outside 1677-2262 become NaT.

    Args:
        tstr: a string, or a list, tuple, array or Series of strings.
        force: rewrite JSOC-style strings even when none ends with ``_TAI``.

    Returns:
        A Timestamp for a scalar, else a Series.
    """
    pd = _pandas.pandas()
    np = _pandas.numpy()
    date = pd.Series(tstr, dtype=object).astype(str)
    if force or date.str.endswith("_TAI").any():
        date = date.str.replace("_TAI", "", regex=False)
        date = date.str.replace("_", " ", regex=False)
        date = date.str.replace(".", "-", regex=False, n=2)
    res = _pd_to_datetime_coerce(date)
    if getattr(res.dt, "tz", None) is not None:
        res = res.dt.tz_localize(None)
    res = _in_ns_range(res)
    if len(res) == 1 and np.isscalar(tstr):
        return res.iloc[0]
    return res
