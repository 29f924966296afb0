"""``python -m sciwire.drms``, as ``python -m drms``."""

from __future__ import annotations

from sciwire.drms.main import main

if __name__ == "__main__":
    main()
