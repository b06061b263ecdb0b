"""File helpers every writer and reader of recsys shares: one way to hash a file, one way to make a rename durable."""

from __future__ import annotations

import hashlib
import os
from typing import BinaryIO

CHUNK_BYTES = 1 << 20


def _hash_rest(digest: hashlib._Hash, fh: BinaryIO) -> None:
    for chunk in iter(lambda: fh.read(CHUNK_BYTES), b""):
        digest.update(chunk)


def sha256_stream(fh: BinaryIO) -> str:
    """sha256 of what remains to be read from an open binary file, streamed in 1 MB chunks."""
    digest = hashlib.sha256()
    _hash_rest(digest, fh)
    return digest.hexdigest()


class HashingReader:
    """A binary file-like object that reads from an open file and hashes exactly the bytes handed out.

    A parser reading through it (pandas.read_csv accepts any object with read()) fingerprints the bytes it parsed,
    from the one open handle: a file replaced on disk meanwhile changes neither what is parsed nor what is hashed.
    """

    mode = "rb"  # what pandas looks at to tell a binary handle from a text one

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self._digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._fh.read(size)
        self._digest.update(data)
        return data

    def finish(self) -> str:
        """Hash what the parser left unread and return the sha256 of the whole file (each byte read once)."""
        _hash_rest(self._digest, self._fh)
        return self._digest.hexdigest()


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
