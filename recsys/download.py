"""Fetch the public dataset from its upstream location and verify it (size and sha256)."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from recsys.errors import DataDownloadError

UPSTREAM_URL = (
    "https://raw.githubusercontent.com/rfordatascience/tidytuesday/master/data/2020/2020-01-21/spotify_songs.csv"
)
EXPECTED_SIZE = 7_971_379
EXPECTED_SHA256 = "9902920cfe4940f0914ebb6716801a42f7f19ac88fbd6693eaae7e2822b16845"


def verify(path: Path, size: int = EXPECTED_SIZE, sha256: str = EXPECTED_SHA256) -> None:
    """Raise DataDownloadError unless the file has the expected size and checksum."""
    actual_size = path.stat().st_size
    if actual_size != size:
        raise DataDownloadError(
            f"{str(path)!r} has {actual_size} bytes, expected {size}: incomplete or a different file"
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        raise DataDownloadError(f"{str(path)!r} has sha256 {digest}, expected {sha256}: corrupt or a different file")


def download(
    dest: str | os.PathLike[str],
    url: str = UPSTREAM_URL,
    size: int = EXPECTED_SIZE,
    sha256: str = EXPECTED_SHA256,
    timeout: float = 30.0,
) -> Path:
    """Download to a temp file beside dest, verify, then rename into place; an existing valid file is kept."""
    target = Path(dest)
    if target.exists():
        try:
            verify(target, size, sha256)
            return target
        except DataDownloadError:
            pass
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(target.suffix + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as fh:
            while chunk := response.read(1 << 16):
                fh.write(chunk)
        verify(tmp, size, sha256)
        os.replace(tmp, target)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        tmp.unlink(missing_ok=True)
        raise DataDownloadError(
            f"could not download {url} ({exc}); this machine may be offline. Copy spotify_songs.csv to "
            f"{str(target)!r} by hand, or use the demo catalogue: 'musicrec data demo'"
        ) from exc
    except DataDownloadError:
        tmp.unlink(missing_ok=True)
        raise
    return target
