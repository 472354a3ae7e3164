"""A disk that fills up under a broker's outbox, and frees again.

The real thing: a small tmpfs mounted for the test (``mount -t tmpfs -o size=4m``), which needs
root, as here and in CI. ``fill`` writes a filler file until the kernel answers ENOSPC; ``free``
deletes it. Where mounting is refused (an unprivileged container), the closest real thing is
the broker process's own file-size limit (RLIMIT_FSIZE, set with prlimit on its pid): no file it
writes may grow, so SQLite gets an I/O error exactly where a full disk would stop it (Python
ignores SIGXFSZ, so the write fails instead of killing the process); ``free`` lifts the limit.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class TmpfsDisk:
    kind = "tmpfs"

    def __init__(self, mount_point: Path) -> None:
        self.path = mount_point
        self._filler = mount_point / "filler"

    def fill(self, _pid: int) -> int:
        """Fill the file system to its last byte; the bytes written."""
        written = 0
        chunk = b"\0" * 65536
        with self._filler.open("ab", buffering=0) as out:
            while True:
                try:
                    written += out.write(chunk)
                except OSError as error:
                    if error.errno != errno.ENOSPC:
                        raise
                    if len(chunk) == 1:
                        return written
                    chunk = chunk[: len(chunk) // 2]

    def free(self, _pid: int) -> None:
        self._filler.unlink(missing_ok=True)


class FileSizeLimit:
    kind = "RLIMIT_FSIZE (mount refused)"

    def __init__(self, path: Path) -> None:
        self.path = path

    def fill(self, pid: int) -> int:
        _, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (1, hard))
        return 0

    def free(self, pid: int) -> None:
        _, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (hard, hard))


@contextmanager
def small_disk(path: Path, size: str = "4m") -> Iterator[TmpfsDisk | FileSizeLimit]:
    """A directory on a small file system of its own (unmounted afterwards), or the fallback above."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True, text=True)  # fmt: skip
    if mounted.returncode != 0:
        yield FileSizeLimit(path)
        return
    try:
        yield TmpfsDisk(path)
    finally:
        with contextlib.suppress(OSError):
            (path / "filler").unlink(missing_ok=True)
        subprocess.run(["umount", "-l", str(path)], capture_output=True)
        with contextlib.suppress(OSError):
            os.rmdir(path)
