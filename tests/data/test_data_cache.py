"""The decoded-array cache: second loads come from it; damage is rebuilt, never fatal."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from cifarlab.data import cache_dir, load_cifar10, locate
from cifarlab.data.cache import ARRAYS

pytestmark = pytest.mark.usefixtures("own_cache")


def _entries() -> list[Path]:
    root = cache_dir() / "arrays"
    return sorted(p for p in root.iterdir() if not p.name.startswith(".")) if root.exists() else []


def _same(a, b) -> bool:
    return (
        all(np.array_equal(getattr(a, n), getattr(b, n)) for n in ARRAYS) and a.classes == b.classes
    )


def test_cache_dir_order(monkeypatch, tmp_path):
    monkeypatch.setenv("CIFARLAB_CACHE", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "a"
    monkeypatch.delenv("CIFARLAB_CACHE")
    assert cache_dir() == tmp_path / "xdg" / "cifarlab"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "cifarlab"


def test_second_load_comes_from_the_cache(sample_copy, sample_data):
    first = load_cifar10(sample_copy)
    assert not first.from_cache
    [entry] = _entries()
    assert sorted(p.name for p in entry.iterdir()) == sorted(
        [f"{n}.npy" for n in ARRAYS] + ["meta.json"]
    )
    second = load_cifar10(sample_copy)
    assert second.from_cache and "cached in" in second.source
    assert _same(first, second) and _same(second, sample_data)
    assert second.train_images.flags["C_CONTIGUOUS"] and second.train_images.flags["WRITEABLE"]
    assert _entries() == [entry]


def test_cache_hit_does_not_read_the_source(sample_copy, monkeypatch):
    load_cifar10(sample_copy)

    def boom(path):
        raise AssertionError("the source was read despite a cache entry")

    monkeypatch.setitem(locate._READERS, "python", boom)
    assert load_cifar10(sample_copy).from_cache


@pytest.mark.parametrize("damage", ["truncate", "flip", "bad-json", "missing"])
def test_damaged_entry_is_rebuilt(sample_copy, sample_data, damage):
    load_cifar10(sample_copy)
    [entry] = _entries()
    target = entry / "train_images.npy"
    if damage == "truncate":
        target.write_bytes(target.read_bytes()[:5000])
    elif damage == "flip":  # same size, valid header: only the checksum can tell
        raw = bytearray(target.read_bytes())
        raw[-1] ^= 0xFF
        target.write_bytes(bytes(raw))
    elif damage == "bad-json":
        (entry / "meta.json").write_text("{not json")
    else:
        (entry / "test_labels.npy").unlink()
    rebuilt = load_cifar10(sample_copy)
    assert not rebuilt.from_cache  # read again from the source...
    assert _same(rebuilt, sample_data)
    again = load_cifar10(sample_copy)  # ...and the entry was written anew
    assert again.from_cache and _same(again, sample_data)


def test_use_cache_false_neither_reads_nor_writes(sample_copy):
    data = load_cifar10(sample_copy, use_cache=False)
    assert not data.from_cache and _entries() == []
    load_cifar10(sample_copy)
    assert not load_cifar10(sample_copy, use_cache=False).from_cache


def test_changed_source_gets_a_new_entry_and_the_stale_one_goes(sample_copy):
    load_cifar10(sample_copy)
    [old] = _entries()
    batch = sample_copy / "data_batch_3"
    st = batch.stat()
    os.utime(batch, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    data = load_cifar10(sample_copy)
    assert not data.from_cache
    [new] = _entries()
    assert new != old
    assert json.loads((new / "meta.json").read_text())["path"] == str(sample_copy.resolve())


def test_sample_is_never_cached():
    assert load_cifar10("sample").is_sample
    assert _entries() == []


def test_unwritable_cache_only_warns(sample_copy, monkeypatch, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("CIFARLAB_CACHE", str(blocker))
    with pytest.warns(UserWarning, match="could not cache"):
        data = load_cifar10(sample_copy)
    assert not data.from_cache and len(data.train_labels) == 2000
