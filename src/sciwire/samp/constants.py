"""astropy.samp's ``constants`` module: statuses, the safe MTypes and an icon."""

from __future__ import annotations

import struct
import zlib

from sciwire.samp._protocol import (
    PROFILE_VERSION,
    SAMP_STATUS_ERROR,
    SAMP_STATUS_OK,
    SAMP_STATUS_WARNING,
)
from sciwire.samp._protocol import SAFE_MTYPES as _SAFE

__all__ = [
    "SAFE_MTYPES",
    "SAMP_ICON",
    "SAMP_STATUS_ERROR",
    "SAMP_STATUS_OK",
    "SAMP_STATUS_WARNING",
]

__profile_version__ = PROFILE_VERSION

#: MTypes a Web Profile client may send to desktop clients (a list, as astropy's).
SAFE_MTYPES: list[str] = list(_SAFE)


def _png(size: int = 16) -> bytes:
    """A small PNG (a filled disc on transparent ground), built here, not shipped."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = bytearray()
    centre, radius2 = (size - 1) / 2, (size / 2 - 1) ** 2
    for y in range(size):
        rows.append(0)  # filter type: none
        for x in range(size):
            inside = (x - centre) ** 2 + (y - centre) ** 2 <= radius2
            rows += bytes((30, 90, 160, 255)) if inside else bytes(4)
    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(rows)))
        + chunk(b"IEND", b"")
    )


#: A PNG icon that clients may serve as ``samp.icon.url`` (astropy ships its logo).
SAMP_ICON: bytes = _png()
