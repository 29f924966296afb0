"""``python -m sciwire``."""

from __future__ import annotations

from sciwire.cli import main

main()
