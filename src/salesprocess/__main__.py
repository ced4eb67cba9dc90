"""``python -m salesprocess``: the command line (extra ``salesprocess[cli]``)."""

from __future__ import annotations

from salesprocess.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
