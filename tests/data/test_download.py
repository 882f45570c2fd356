"""Download: served from a local http.server built from the sample (no internet needed)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from collections.abc import Iterator

import numpy as np
import pytest

from cifarlab.data import download as dl
from cifarlab.data import load_cifar10
from cifarlab.errors import DataError


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, helpers) -> Iterator[tuple[str, str]]:
    """Serve the sample as cifar-10-python.tar.gz on 127.0.0.1; yield (url, md5)."""
    root = tmp_path_factory.mktemp("www")
    folder = helpers.copy_sample(tmp_path_factory.mktemp("src"))
    tarball = helpers.make_tarball(folder, root / "cifar-10-python.tar.gz")
    md5 = hashlib.md5(tarball.read_bytes()).hexdigest()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest output clean
            pass

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(root))
    )
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/cifar-10-python.tar.gz", md5
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_good_md5_downloads_and_loads_the_sample(server, tmp_path, sample_data):
    url, md5 = server
    dest = tmp_path / "dest"
    path = dl.download_cifar10(dest, url=url, md5=md5, progress=False)
    assert path == dest / "cifar-10-python.tar.gz"
    assert [p.name for p in dest.iterdir()] == ["cifar-10-python.tar.gz"]  # no temp file left
    data = load_cifar10(path, use_cache=False)
    assert np.array_equal(data.train_images, sample_data.train_images)
    assert np.array_equal(data.test_labels, sample_data.test_labels)


def test_wrong_md5_raises_and_leaves_no_file(server, tmp_path):
    url, _ = server
    dest = tmp_path / "dest"
    with pytest.raises(DataError, match=r"is corrupt \(md5 [0-9a-f]{32}, expected 0{32}\)"):
        dl.download_cifar10(dest, url=url, md5="0" * 32, progress=False)
    assert list(dest.iterdir()) == []


def test_unreachable_server_raises_and_leaves_no_file(server, tmp_path):
    url, md5 = server
    dest = tmp_path / "dest"
    with pytest.raises(DataError, match=r"download of .*/missing.tar.gz failed: HTTP Error 404"):
        dl.download_cifar10(
            dest, url=url.replace("cifar-10-python", "missing"), md5=md5, progress=False
        )
    assert list(dest.iterdir()) == []


def test_load_downloads_into_the_cache_when_nothing_is_found(
    server, own_cache, monkeypatch, sample_data
):
    url, md5 = server
    monkeypatch.setattr(dl, "OFFICIAL_URL", url)
    monkeypatch.setattr(dl, "OFFICIAL_MD5", md5)
    data = load_cifar10(progress=False)
    assert (own_cache / "cifar10" / "cifar-10-python.tar.gz").is_file()
    assert np.array_equal(data.train_images, sample_data.train_images)
    assert not data.is_sample and "archive" in data.source
    # Second call: found in the cache folder, no download (the server is not needed).
    monkeypatch.setattr(dl, "OFFICIAL_URL", "http://127.0.0.1:9/none")
    assert np.array_equal(load_cifar10(progress=False).test_images, sample_data.test_images)


def test_failed_download_falls_back_to_the_sample_when_asked(server, own_cache, monkeypatch):
    url, _ = server
    monkeypatch.setattr(dl, "OFFICIAL_URL", url)
    monkeypatch.setattr(dl, "OFFICIAL_MD5", "0" * 32)
    data = load_cifar10(progress=False, fallback_to_sample=True)
    assert data.is_sample
    assert data.source.startswith(
        "bundled sample (2,000 train / 500 test): full CIFAR-10 not found"
    )
    assert "is corrupt" in data.source
    assert list((own_cache / "cifar10").iterdir()) == []
    with pytest.raises(DataError, match=r"^CIFAR-10 not found in .*is corrupt.*--data-dir DIR"):
        load_cifar10(progress=False)
