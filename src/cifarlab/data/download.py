"""Download an official archive (``cifar-10-python.tar.gz``, ``cifar-100-python.tar.gz``),
verifying its md5 as it streams.

The bytes go to a hidden temporary file beside the destination, which is renamed
to its final name only after the md5 matched; on any failure the temporary file
is removed, so a broken download never looks like a dataset.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from cifarlab.errors import DataError

OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
OFFICIAL_MD5 = "c58f30108f718f92721af3b95e74349a"
TARBALL_NAME = "cifar-10-python.tar.gz"
CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
CIFAR100_MD5 = "eb9058c3a382ffc7106e4002c42a8d85"
CIFAR100_TARBALL_NAME = "cifar-100-python.tar.gz"
_CHUNK = 1 << 20  # 1 MiB


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def download_cifar10(
    dest_dir: str | os.PathLike[str],
    *,
    url: str = OFFICIAL_URL,
    md5: str = OFFICIAL_MD5,
    progress: bool = True,
    timeout: float = 30.0,
) -> Path:
    """Download ``url`` to ``dest_dir/cifar-10-python.tar.gz`` and return that path
    (:func:`download_archive` with CIFAR-10's name)."""
    return download_archive(
        dest_dir,
        url=url,
        md5=md5,
        filename=TARBALL_NAME,
        dataset="CIFAR-10",
        progress=progress,
        timeout=timeout,
    )


def download_archive(
    dest_dir: str | os.PathLike[str],
    *,
    url: str,
    md5: str,
    filename: str,
    dataset: str,
    progress: bool = True,
    timeout: float = 30.0,
) -> Path:
    """Download ``url`` to ``dest_dir/filename`` and return that path.

    Raises DataError (leaving no file behind) when the download fails or its md5
    is not ``md5``. ``timeout`` is in seconds, per network operation; ``dataset``
    ("CIFAR-10") names the download in error messages.
    """
    # Imported here: only a download needs them, and `import cifarlab.data` stays light.
    import http.client
    import urllib.request

    from tqdm import tqdm

    dest_dir = Path(dest_dir)
    final = dest_dir / filename
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"cannot create {dest_dir} for the {dataset} download: {_one_line(exc)}"
        ) from None

    fd, tmp_name = tempfile.mkstemp(prefix=f".{filename}.", suffix=".part", dir=dest_dir)
    tmp = Path(tmp_name)
    digest = hashlib.md5()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=filename,
                disable=not progress,
                leave=False,
            ) as bar:
                while chunk := resp.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    bar.update(len(chunk))
        if digest.hexdigest() != md5:
            raise DataError(
                f"download of {url} is corrupt (md5 {digest.hexdigest()}, expected {md5}); "
                "try again"
            )
        os.replace(tmp, final)
    except DataError:
        tmp.unlink(missing_ok=True)
        raise
    except (OSError, ValueError, http.client.HTTPException) as exc:
        # URLError/HTTPError/timeouts are OSErrors; a malformed URL is a ValueError.
        tmp.unlink(missing_ok=True)
        raise DataError(f"download of {url} failed: {_one_line(exc)}") from None
    except BaseException:  # Ctrl-C: still leave nothing half-written
        tmp.unlink(missing_ok=True)
        raise
    return final
