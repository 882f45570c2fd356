"""Hostile files: code-execution pickles as dataset batches, checkpoints carrying
arbitrary objects, and tarballs whose members escape the target directory.

Each must be refused with a one-line cifarlab error naming the file; the payload never
runs (a sentinel file it would create never appears), and nothing is created, removed or
changed (names, sizes, mtimes, SHA-256 of every file) in the test's whole folder, the
cache, or any absolute path a payload names.

A payload marked live is first shown to run under a plain loader (pickle.loads or
torch.load(weights_only=False)). Three of the fourteen pickle payloads are not live: they
misuse globals the batch reader admits (numpy's _reconstruct, _codecs.encode, torch's
_rebuild_tensor) and would only raise under a plain loader; they check that the reader
admits those globals only for their real use. The ledger's note says which is which.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import pickle
import shutil
import tarfile
import uuid
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from relhelpers import payload_runs, tiny_python_dir

import cifarlab.data.download as download_module
from cifarlab.cli.main import main
from cifarlab.data import download_cifar10, load_cifar10
from cifarlab.errors import CheckpointError, DataError
from cifarlab.rundir import FORMAT, latest_checkpoint, load_checkpoint


class _System:
    """Unpickles as os.system(cmd): the classic pickle payload."""

    def __init__(self, cmd: str) -> None:
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


class _Harmless:
    """A plain custom class: not code execution, but still not tensors or plain data."""

    def __init__(self) -> None:
        self.x = 1


def _quote(s: str) -> bytes:
    return s.encode()


def pickle_payloads(sentinel: Path) -> list[tuple[str, bytes, bool]]:
    """(name, bytes, live): ``live`` payloads create ``sentinel`` under plain pickle.loads."""
    cmd = f"touch {sentinel}"
    out = [
        (f"os.system via __reduce__, protocol {p}", pickle.dumps(_System(cmd), protocol=p), True)
        for p in (0, 2, 4, 5)
    ]
    batch = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"extra": _System(cmd)}
    out.append(("os.system nested in a valid batch dict", pickle.dumps(batch, protocol=2), True))
    s = _quote(cmd)
    code = _quote(f"__import__('os').system('{cmd}')")
    out += [
        ("posix.system, GLOBAL opcode", b"cposix\nsystem\n(V" + s + b"\ntR.", True),
        ("builtins.eval", b"cbuiltins\neval\n(V" + code + b"\ntR.", True),
        ("builtins.exec", b"cbuiltins\nexec\n(V" + code + b"\ntR.", True),
        (
            "subprocess.call",
            b"csubprocess\ncall\n((Vtouch\nV" + _quote(str(sentinel)) + b"\nltR.",
            True,
        ),
        ("os.system, INST opcode", b"(V" + s + b"\nios\nsystem\n.", True),
        (
            "builtins.getattr(__import__('os'), 'system')",
            b"cbuiltins\ngetattr\n(cbuiltins\n__import__\n(Vos\ntRVsystem\ntR(V" + s + b"\ntR.",
            True,
        ),
        (
            "numpy _reconstruct with os.system as the array type",
            b"cnumpy.core.multiarray\n_reconstruct\n(cos\nsystem\n(I0\ntc_codecs\nencode\n(Vb\nVlatin1\ntRtR.",
            False,
        ),
        ("_codecs.encode with a non-latin1 codec", b"c_codecs\nencode\n(Vabc\nVrot13\ntR.", False),
        ("torch._utils._rebuild_tensor", b"ctorch._utils\n_rebuild_tensor\n(tR.", False),
    ]
    return out


PAYLOAD_RAN = "payload's sentinel file created"


def test_hostile_pickle_as_dataset_batch_is_refused(tmp_path, ledger):
    sentinel = tmp_path / f"pwned-{uuid.uuid4().hex}"
    clean = tiny_python_dir(tmp_path / "clean")
    for i, (name, payload, live) in enumerate(pickle_payloads(sentinel)):
        if live:  # the payload is real: an unrestricted unpickler runs it
            assert payload_runs(lambda p=payload: pickle.loads(p), sentinel), name
        for where in ("data_batch_1", "batches.meta", "tarball member test_batch"):
            case_dir = tmp_path / f"case{i}-{where.split()[-1]}"
            folder = case_dir / "cifar-10-batches-py"
            with ledger.case("hostile_pickle", f"{name}, as {where}") as case:
                shutil.copytree(clean, folder)
                if where.startswith("tarball"):
                    (folder / "test_batch").write_bytes(payload)
                    target = case_dir / "tar"
                    target.mkdir()
                    with tarfile.open(target / "cifar-10-python.tar.gz", "w:gz") as tar:
                        tar.add(folder, arcname="cifar-10-batches-py")
                    named = "cifar-10-batches-py/test_batch"
                else:
                    (folder / where).write_bytes(payload)
                    target, named = folder, str(folder / where)
                case.guard(tmp_path)  # the sentinel's folder, the clean copy, every case
                with pytest.raises(DataError) as err:
                    load_cifar10(target)
                msg = str(err.value)
                assert not case.check(sentinel.exists(), PAYLOAD_RAN), "the payload ran"
                assert named in msg and "\n" not in msg, msg
                case.note = ("live; " if live else "not live; ") + msg.split(": ", 1)[1][:150]


def checkpoint_payloads(sentinel: Path, good: dict) -> list[tuple[str, bytes, bool]]:
    cmd = f"touch {sentinel}"

    def saved(obj, **kwargs) -> bytes:
        buf = io.BytesIO()
        torch.save(obj, buf, **kwargs)
        return buf.getvalue()

    def repack_pkl(data: bytes, pkl: bytes) -> bytes:
        """The archive ``data`` with its data.pkl replaced (checksums recomputed)."""
        src, out = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
            for info in src.infolist():
                body = pkl if info.filename.endswith("/data.pkl") else src.read(info)
                dst.writestr(info.filename, body)
        return out.getvalue()

    evil_pkl = b"\x80\x02cposix\nsystem\nq\x00X" + len(cmd).to_bytes(4, "little") + cmd.encode()
    evil_pkl += b"q\x01\x85q\x02Rq\x03."
    return [
        (
            "os.system object inside a cifarlab checkpoint",
            saved({**good, "evil": _System(cmd)}),
            True,
        ),
        ("os.system object as the whole checkpoint", saved(_System(cmd)), True),
        (
            "os.system in the legacy (non-zip) torch format",
            saved(_System(cmd), _use_new_zipfile_serialization=False),
            True,
        ),
        (
            "plain pickle (not a torch archive) with os.system",
            pickle.dumps(_System(cmd), protocol=2),
            True,
        ),
        (
            "torch archive whose data.pkl calls posix.system",
            repack_pkl(saved(good), evil_pkl),
            True,
        ),
        (
            "functools.partial(os.system) in the model entry",
            saved({**good, "model": functools.partial(os.system, cmd)}),
            False,
        ),
        ("custom class instance", saved({**good, "history": _Harmless()}), False),
        ("numpy array in place of a tensor", saved({**good, "model": {"w": np.zeros(3)}}), False),
        (
            "model entry that is not a state dict",
            saved({**good, "model": ["not", "tensors"]}),
            False,
        ),
        ("step that is not a count", saved({**good, "step": "forty"}), False),
        ("no cifarlab format tag", saved({"model": {}, "step": 0, "recipe": {}}), False),
    ]


def test_hostile_checkpoint_is_refused(tmp_path, ledger, capsys):
    sentinel = tmp_path / f"pwned-{uuid.uuid4().hex}"
    good = {
        "format": FORMAT,
        "format_version": 1,
        "model": {"w": torch.ones(2)},
        "recipe": {},
        "step": 0,
    }
    for i, (name, data, live) in enumerate(checkpoint_payloads(sentinel, good)):
        path = tmp_path / f"hostile{i}.pt"
        path.write_bytes(data)
        if live:
            assert payload_runs(lambda p=path: torch.load(p, weights_only=False), sentinel), name
        with ledger.case("hostile_checkpoint", name, guard=[tmp_path]) as case:
            with pytest.raises(CheckpointError) as err:
                load_checkpoint(path)
            assert not case.check(sentinel.exists(), PAYLOAD_RAN), "the payload ran"
            msg = str(err.value)
            assert str(path) in msg and "\n" not in msg, msg
            case.note = ("live; " if live else "not live; ") + msg.split(": ", 1)[1][:150]

    # The same files met by `cifarlab train --resume` and `cifarlab evaluate`.
    hostile = checkpoint_payloads(sentinel, good)[0][1]
    run = tmp_path / "run"
    run.mkdir()
    for fname in ("checkpoint.pt", "checkpoint.prev.pt"):
        (run / fname).write_bytes(hostile)
    for name, argv in [
        ("train --resume into a run with hostile checkpoints", ["train", "--resume", str(run)]),
        ("evaluate a hostile checkpoint", ["evaluate", str(run / "checkpoint.pt")]),
    ]:
        with ledger.case("hostile_checkpoint", name, guard=[tmp_path]) as case:
            capsys.readouterr()
            assert main([*argv, "--data-dir", "sample"]) == 2
            err = capsys.readouterr().err.strip()
            assert not case.check(sentinel.exists(), PAYLOAD_RAN)
            assert err.startswith("cifarlab: error: ") and len(err.splitlines()) == 1, err
            assert "refused" in err
    with pytest.raises(CheckpointError):
        latest_checkpoint(run)


def _member(tar: tarfile.TarFile, name: str, data: bytes = b"pwned\n", **attrs) -> None:
    info = tarfile.TarInfo(name)  # TarInfo keeps the name as given (add() would strip "/")
    for key, value in attrs.items():
        setattr(info, key, value)
    if info.isreg():
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    else:
        tar.addfile(info)


def tarball_variants(escape_abs: str) -> list[tuple[str, list[dict], bool]]:
    """(name, hostile members, placed first?) added to an otherwise valid archive."""
    sym, lnk, chr_, fifo = tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.FIFOTYPE
    return [
        ("member '../escape.txt'", [{"name": "../escape.txt"}], False),
        ("member '../../escape.txt'", [{"name": "../../escape.txt"}], True),
        (
            "member 'cifar-10-batches-py/../../escape.txt'",
            [{"name": "cifar-10-batches-py/../../escape.txt"}],
            False,
        ),
        ("absolute member path", [{"name": escape_abs}], False),
        ("Windows-style '..\\\\escape.txt'", [{"name": "..\\escape.txt"}], False),
        (
            "batch file as a symlink to /etc/passwd",
            [{"name": "cifar-10-batches-py/data_batch_1", "type": sym, "linkname": "/etc/passwd"}],
            False,
        ),
        (
            "extra symlink climbing out ('../../outside')",
            [{"name": "cifar-10-batches-py/notes", "type": sym, "linkname": "../../outside"}],
            False,
        ),
        (
            "symlink to /etc, then a member written through it",
            [
                {"name": "etc-link", "type": sym, "linkname": "/etc"},
                {"name": "etc-link/cron.d/pwned"},
            ],
            True,
        ),
        (
            "batch file as a hard link to '../../etc/passwd'",
            [
                {
                    "name": "cifar-10-batches-py/data_batch_2",
                    "type": lnk,
                    "linkname": "../../etc/passwd",
                }
            ],
            False,
        ),
        (
            "extra hard link to /etc/passwd",
            [{"name": "cifar-10-batches-py/readme", "type": lnk, "linkname": "/etc/passwd"}],
            False,
        ),
        (
            "character device member",
            [{"name": "cifar-10-batches-py/tty", "type": chr_, "devmajor": 5, "devminor": 0}],
            False,
        ),
        ("FIFO member", [{"name": "cifar-10-batches-py/fifo", "type": fifo}], False),
    ]


def outside_targets(escape_abs: str) -> list[Path]:
    """The absolute paths the hostile members name or link to (guarded by each case)."""
    return [Path(escape_abs), Path("/etc/passwd"), Path("/etc/cron.d"), Path("/etc-link")]


def _hostile_tarball(path: Path, clean: Path, members: list[dict], first: bool) -> None:
    skip = {Path(m["name"]).name for m in members}
    with tarfile.open(path, "w:gz") as tar:
        if first:
            for m in members:
                _member(tar, **m)
        tar.add(
            clean,
            arcname="cifar-10-batches-py",
            filter=lambda t: None if Path(t.name).name in skip else t,
        )
        if not first:
            for m in members:
                _member(tar, **m)


def test_hostile_tarball_is_refused_and_writes_nothing_outside(tmp_path, ledger, monkeypatch):
    clean = tiny_python_dir(tmp_path / "clean")
    cache = Path(os.environ["CIFARLAB_CACHE"])
    escape_abs = f"/tmp/cifarlab-escape-{uuid.uuid4().hex}.txt"
    for i, (name, members, first) in enumerate(tarball_variants(escape_abs)):
        box = tmp_path / f"case{i}"
        target = box / "target"
        target.mkdir(parents=True)
        _hostile_tarball(target / "cifar-10-python.tar.gz", clean, members, first)
        # The box's whole parent tree (where '..' members land), the cache, and every
        # absolute path a member names or links to.
        guarded = [tmp_path, cache, *outside_targets(escape_abs)]
        with ledger.case("hostile_tarball", name, guard=guarded) as case:
            with pytest.raises(DataError) as err:
                load_cifar10(target)
            msg = str(err.value)
            assert "cifar-10-python.tar.gz:" in msg and "\n" not in msg, msg
            case.note = msg.split(".tar.gz:", 1)[1][:150]

    # Downloaded (file:// URL, md5 matching the hostile archive): saved inside the target, refused.
    hostile = tmp_path / "case1" / "target" / "cifar-10-python.tar.gz"
    md5 = hashlib.md5(hostile.read_bytes()).hexdigest()
    guarded = [tmp_path, cache, *outside_targets(escape_abs)]
    with ledger.case(
        "hostile_tarball", "downloaded hostile archive, then loaded", guard=guarded
    ) as case:
        box = tmp_path / "download"
        saved = download_cifar10(box / "target", url=hostile.as_uri(), md5=md5, progress=False)
        with pytest.raises(DataError):
            load_cifar10(box / "target")
        assert saved == box / "target" / "cifar-10-python.tar.gz"
        assert saved.read_bytes() == hostile.read_bytes()
        case.allow(box, box / "target", saved)  # the download itself, nothing else
    with ledger.case("hostile_tarball", "hostile archive fetched by the default download") as case:
        cache = tmp_path / "fresh-cache"  # the default location: cache/cifar10
        monkeypatch.setenv("CIFARLAB_CACHE", str(cache))
        monkeypatch.delenv("CIFARLAB_DATA", raising=False)
        monkeypatch.setattr(download_module, "OFFICIAL_URL", hostile.as_uri())
        monkeypatch.setattr(download_module, "OFFICIAL_MD5", md5)
        case.guard(tmp_path, *outside_targets(escape_abs))
        with pytest.raises(DataError):
            load_cifar10(None, progress=False)
        saved = cache / "cifar10" / "cifar-10-python.tar.gz"
        assert saved.read_bytes() == hostile.read_bytes()
        case.allow(cache, cache / "cifar10", saved)  # the download itself, nothing else
