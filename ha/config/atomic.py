"""Atomic file replacement: readers see the old file or the new one, never half.

The recipe: write a temporary file in the same directory (so the rename
cannot cross a file system), fsync it, rename it over the target, then fsync
the directory so the rename itself survives a power cut.

Modes: the temporary file is born 0600 (mkstemp opens it O_EXCL with that
mode, whatever the umask), so a secret is never readable by others, not even
for the moment between open and chmod; the default stays 0600. A caller that
wants a wider mode (a pid file) asks for it, and gets it before the rename.
"""

import os
import tempfile

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def atomic_write(path, data, mode=PRIVATE_FILE):
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
            if mode != PRIVATE_FILE:
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


def private_dir(directory):
    """Create *directory* (and missing parents) 0700 when it is not there.

    An existing directory is left as it is: it may be shared (/tmp, /run) and
    is not ours to narrow; the files written in it are 0600 anyway.
    """
    directory = os.path.abspath(os.fspath(directory))
    if os.path.isdir(directory):
        return directory
    parent = os.path.dirname(directory)
    if parent != directory and not os.path.isdir(parent):
        private_dir(parent)
    try:
        os.mkdir(directory, PRIVATE_DIR)  # mkdir's mode is narrowed by the umask only
    except FileExistsError:
        pass
    return directory


def _fsync_dir(directory):
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
