"""JSON on every package's hot path: the json module's own C scanner and encoder,
called directly, with the json module's results and errors.

* :data:`scan` reads one JSON value at an index: ``scan(text, idx) -> (value, end)``,
  raising ``StopIteration(idx)`` where no value starts and ``JSONDecodeError`` on bad
  JSON (the scanner ``json.loads`` ends up in).
* :func:`loads` is ``json.loads(text)``: a document that starts at the first
  character and ends at the last (what JSON writers produce) takes one :data:`scan`;
  anything else, and every error, goes through ``json.loads`` itself.
* :func:`reused_encoder` is ``encoder.encode`` for a stock :class:`json.JSONEncoder`
  without building the C encoder again on every call, as ``JSONEncoder.encode``
  does: one per thread (its circular-reference markers belong to the call in
  flight), dropped after any error (its markers may still hold the failed containers).
"""

from __future__ import annotations

import json
import json.encoder
import threading
from collections.abc import Callable
from typing import Any, cast

__all__ = ["loads", "reused_encoder", "scan"]

scan: Callable[[str, int], tuple[Any, int]] = cast(Any, json.JSONDecoder()).scan_once

#: first characters json.loads treats specially (JSON whitespace, a BOM)
_LEADING = " \t\n\r\ufeff"


def loads(text: str) -> Any:
    """``json.loads(text)``: the same value, the same exceptions."""
    if text and text[0] not in _LEADING:
        try:
            value, end = scan(text, 0)
        except (StopIteration, ValueError, RecursionError):
            pass  # json.loads raises it, as it should be raised
        else:
            if end == len(text):
                return value
    return json.loads(text)


_C_MAKE_ENCODER: Any = cast(Any, json.encoder).c_make_encoder  # None without _json


def reused_encoder(encoder: json.JSONEncoder) -> Callable[[Any], str]:
    """``encoder.encode``, reusing one C encoder per thread (for a stock encoder
    class: one that does not override ``encode`` or ``iterencode``)."""
    if _C_MAKE_ENCODER is None or encoder.indent is not None:
        return encoder.encode  # no C encoder to reuse (JSONEncoder would not use one)
    basestring = (
        json.encoder.encode_basestring_ascii
        if encoder.ensure_ascii
        else json.encoder.encode_basestring
    )
    local = threading.local()
    join = "".join

    def make() -> Any:
        made = _C_MAKE_ENCODER(
            {} if encoder.check_circular else None,
            encoder.default,
            basestring,
            None,
            encoder.key_separator,
            encoder.item_separator,
            encoder.sort_keys,
            encoder.skipkeys,
            encoder.allow_nan,
        )
        local.c = made
        return made

    def encode(obj: Any) -> str:
        c = getattr(local, "c", None) or make()
        try:
            return join(c(obj, 0))
        except BaseException:
            local.c = None
            raise

    return encode
