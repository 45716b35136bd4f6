"""Every export in one folder that cleans itself: old entries go, and the whole stays bounded.

    >>> exports = ExportFolder()             # <tmp>/scene-probe-exports
    >>> folder = exports.new()               # a fresh subfolder for one export
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from pathlib import Path


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


class ExportFolder:
    """Subfolders of `root`, one per export; on each new one, those older than `ttl_s` are
    deleted, then the oldest until the rest fit in `max_bytes`."""

    def __init__(self, root: str | Path | None = None, ttl_s: float = 3600,
                 max_bytes: int = 200 * 2**20):
        self.root = Path(root) if root else Path(tempfile.gettempdir()) / "scene-probe-exports"
        self.ttl_s, self.max_bytes = ttl_s, max_bytes
        self._lock = threading.Lock()

    def new(self) -> Path:
        with self._lock:
            self.root.mkdir(parents=True, exist_ok=True)
            self.clean()
            return Path(tempfile.mkdtemp(prefix="export-", dir=self.root))

    def clean(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        entries = sorted((p for p in self.root.glob("export-*") if p.is_dir()),
                         key=lambda p: p.stat().st_mtime)
        kept = []
        for p in entries:
            if now - p.stat().st_mtime > self.ttl_s:
                shutil.rmtree(p, ignore_errors=True)
            else:
                kept.append((p, _size(p)))
        total = sum(size for _, size in kept)
        for p, size in kept:  # oldest first
            if total <= self.max_bytes:
                break
            shutil.rmtree(p, ignore_errors=True)
            total -= size
