"""Write output files whole or not at all (temp file in the same directory + rename).

An interrupted or failed write leaves the previous file (or none), never half a
document. Temp files still open are listed in ``PENDING`` so that the CLI's
Ctrl-C handler can remove them before it exits.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Temp files being written right now (removed on Ctrl-C by the CLI).
PENDING: set[str] = set()


def write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    """Replace ``path`` with ``text`` atomically (same-directory rename)."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=str(target.parent or "."))
    PENDING.add(tmp)
    try:
        with os.fdopen(fd, "w", encoding=encoding) as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        remove_pending_file(tmp)
        raise
    finally:
        PENDING.discard(tmp)


def remove_pending_file(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except OSError:
        pass


def remove_pending() -> None:
    """Remove every temp file still being written (called from the Ctrl-C handler)."""
    for tmp in list(PENDING):
        remove_pending_file(tmp)
        PENDING.discard(tmp)
