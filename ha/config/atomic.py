"""Atomic file replacement: readers see the old file or the new one, never half.

The recipe: write a temporary file in the same directory (so the rename
cannot cross a file system), fsync it, rename it over the target, then fsync
the directory so the rename itself survives a power cut.
"""

import os
import tempfile


def atomic_write(path, data, mode=0o644):
    """Replace *path* with *data* (bytes, or str encoded as UTF-8) atomically."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(
        dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(directory)


def _fsync_dir(directory):
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
