"""File helpers every writer and reader of recsys shares: one way to hash a file, one way to make a rename durable."""

from __future__ import annotations

import hashlib
import os
from typing import BinaryIO

CHUNK_BYTES = 1 << 20


def sha256_stream(fh: BinaryIO) -> str:
    """sha256 of what remains to be read from an open binary file, streamed in 1 MB chunks."""
    digest = hashlib.sha256()
    for chunk in iter(lambda: fh.read(CHUNK_BYTES), b""):
        digest.update(chunk)
    return digest.hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes: the data fingerprint of a catalogue and the checksum of a snapshot's arrays."""
    with open(path, "rb") as fh:
        return sha256_stream(fh)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename inside `path` durable (best effort: some file systems cannot open a directory)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
