"""A minimal FITS writer: one primary HDU, 2-D integer image, 2880-byte blocks."""

from __future__ import annotations

import struct
from collections.abc import Sequence

__all__ = ["BLOCK", "fits_image"]

#: FITS files are made of 2880-byte blocks (36 cards of 80 characters).
BLOCK = 2880

Card = tuple[str, "str | int | float | bool", str]


def _value(v: str | int | float | bool) -> str:
    if isinstance(v, bool):
        return f"{'T' if v else 'F':>20}"
    if isinstance(v, int):
        return f"{v:>20d}"
    if isinstance(v, float):
        return f"{v:>20.10G}"
    text = "'" + v.replace("'", "''").ljust(8) + "'"
    return f"{text:<20}"


def _card(key: str, value: str | int | float | bool, comment: str = "") -> bytes:
    if len(key) > 8:
        raise ValueError(f"FITS keyword longer than 8 characters: {key}")
    text = f"{key:<8}= {_value(value)}"
    if comment:
        text += f" / {comment}"
    raw = text[:80].ljust(80).encode("ascii", "replace")
    return raw


def _pad(data: bytes, fill: bytes) -> bytes:
    rest = len(data) % BLOCK
    return data if rest == 0 else data + fill * (BLOCK - rest)


def fits_image(
    pixels: Sequence[Sequence[int]], cards: Sequence[Card] = (), *, bitpix: int = 16
) -> bytes:
    """Return a FITS file holding *pixels* (rows of ints) and extra header *cards*."""
    if bitpix not in (8, 16, 32):
        raise ValueError("bitpix must be 8, 16 or 32")
    ny = len(pixels)
    nx = len(pixels[0]) if ny else 0
    header = [
        _card("SIMPLE", True, "conforms to FITS standard"),
        _card("BITPIX", bitpix, "array data type"),
        _card("NAXIS", 2, "number of array dimensions"),
        _card("NAXIS1", nx),
        _card("NAXIS2", ny),
    ]
    header += [_card(k, v, c) for k, v, c in cards]
    header.append(b"END".ljust(80))
    fmt = {8: "B", 16: "h", 32: "i"}[bitpix]
    flat = [int(v) for row in pixels for v in row]
    data = struct.pack(f">{len(flat)}{fmt}", *flat)
    return _pad(b"".join(header), b" ") + _pad(data, b"\0")
