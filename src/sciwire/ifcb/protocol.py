"""The IFCB message vocabulary, under pyifcbclient's module name (``ifcbclient.protocol``).

:func:`parse_response` turns one ``:``-separated host message into typed fields and
:data:`fixed_length_responses` lists the fixed-layout message forms as tuples of
literals and field types, as pyifcbclient names them. The codec itself (dict look-ups
instead of a scan of the table, real booleans, lazily decoded images) is
:func:`parse_message`, re-exported here with its helpers.
"""

from __future__ import annotations

from typing import Any

from sciwire.ifcb._codec import (
    _HEADS_SPEC,
    VALUECHANGED_TYPES,
    DaqValues,
    IFCBProtocolError,
    RoiImage,
    UnknownMessage,
    format_message,
    parse_message,
)

__all__ = [
    "VALUECHANGED_TYPES",
    "DaqValues",
    "IFCBProtocolError",
    "RoiImage",
    "UnknownMessage",
    "fixed_length_responses",
    "format_message",
    "parse_message",
    "parse_response",
]

# Field kinds of the codec's table -> the types the tuples name. Free text (which may
# contain ':') and graph times are strings in the tuples, as the reference lists them.
_TYPES: dict[str, type] = {"i": int, "f": float, "b": bool, "s": str, "r": str, "t": str}
_VARIABLE = {"J", "*"}  # JSON or raw-list tails have no fixed layout
# free text that is the message's whole tail, variable-length in the reference's table too
_FREE_TAILS = {
    ("reportevent",),
    ("file", "chunk"),
    ("valuechanged", "currentgpsposition"),
    ("valuechanged", "samplegpsposition"),
}


def _fixed_forms() -> list[tuple[Any, ...]]:
    forms: list[tuple[Any, ...]] = []

    def add(prefix: list[str], spec: str) -> None:
        kinds = spec.split()
        literals = tuple(prefix) + tuple(k for k in kinds if k not in _TYPES)
        if _VARIABLE.intersection(kinds) or literals in _FREE_TAILS:
            return
        forms.append((*prefix, *(_TYPES.get(kind, kind) for kind in kinds)))

    for head, specs in _HEADS_SPEC.items():
        for spec in specs:
            add([head], spec)
        if head == "syringetrack":
            forms.append(("triggerimage", str))  # parsed by its own function
    for key, specs in VALUECHANGED_TYPES.items():
        for spec in specs:
            add(["valuechanged", key], spec)
    return forms


#: Every fixed-layout message form: a tuple of literal strings (matched as they are)
#: and the types ``int``, ``float``, ``bool`` and ``str`` (converted). Variable forms
#: (``triggerrois``, ``triggercontent``, ``file:list``, ``interactive:load``...) are
#: parsed by their own rules and are not listed.
fixed_length_responses: list[tuple[Any, ...]] = _fixed_forms()


def parse_response(m: str) -> list[Any]:
    """Parse one IFCB host message *m* into typed fields (pyifcbclient's name).

    Args:
        m: the message text, e.g. ``"valuechanged:pausestate:0"``.

    Returns:
        The fields, e.g. ``["valuechanged", "pausestate", False]``; an
        :class:`UnknownMessage` of raw strings outside the known vocabulary.

    Raises:
        IFCBProtocolError: a known message with the wrong shape or a bad value (also a
            ``ValueError``, as pyifcbclient raised).
    """
    return parse_message(m)
