"""Version of sciwire.drms (sciwire's own), in drms.version's shape."""

from __future__ import annotations

from sciwire import __version__ as version

__all__ = ["bugfix", "major", "minor", "release", "version"]


def _numbers(text: str) -> tuple[int, int, int]:
    parts = [int(p) if p.isdigit() else 0 for p in text.split("+")[0].split(".")[:3]]
    parts += [0] * (3 - len(parts))
    return parts[0], parts[1], parts[2]


major, minor, bugfix = _numbers(version)
release = "dev" not in version
