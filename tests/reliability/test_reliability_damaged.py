"""Truncated, bit-flipped, empty and overwritten checkpoint files.

Each damaged checkpoint.pt must give a one-line CheckpointError naming the file (or,
for a flipped bit that changes nothing torch reads, load exactly the original content:
never silently wrong weights); the good checkpoint.prev.pt beside it stays loadable
and is what a resume continues from, ending exactly as the uninterrupted run.
"""

from __future__ import annotations

import os
import random
import shutil
import struct

from relhelpers import SAME_AS_REFERENCE, same_content, same_result

from cifarlab.cli.main import main
from cifarlab.errors import CheckpointError
from cifarlab.rundir import latest_checkpoint, load_checkpoint

READ_BACK = "read back vs the undamaged checkpoint's content"
SEED = int(os.environ.get("CIFARLAB_RELIABILITY_SEED", "8"))


def _central_directory(data: bytes) -> tuple[int, int]:
    """(offset, end) of the zip central directory (zip64-aware, as torch writes it)."""
    eocd = data.rfind(b"PK\x05\x06")
    loc = data.rfind(b"PK\x06\x07")
    if loc != -1:
        (z64,) = struct.unpack_from("<Q", data, loc + 8)
        (offset,) = struct.unpack_from("<Q", data, z64 + 48)
        return offset, len(data)
    (offset,) = struct.unpack_from("<I", data, eocd + 16)
    return offset, len(data)


def damaged_variants(good: bytes, rng: random.Random) -> list[tuple[str, bytes]]:
    size = len(good)
    out: list[tuple[str, bytes]] = [("empty file", b"")]
    for n in [1, 4, 100, size // 2, size - 1, size - 22, size - 100]:
        out.append((f"truncated to {n} of {size} bytes", good[:n]))
    for _ in range(18):
        n = rng.randrange(1, size)
        out.append((f"truncated to {n} of {size} bytes", good[:n]))

    def flip(pos: int, label: str) -> tuple[str, bytes]:
        b = bytearray(good)
        bit = rng.randrange(8)
        b[pos] ^= 1 << bit
        return (f"bit {bit} of byte {pos} flipped ({label})", bytes(b))

    pkl = good.find(b"data.pkl")
    cd_start, cd_end = _central_directory(good)
    for _ in range(30):
        out.append(flip(rng.randrange(size), "anywhere"))
    for _ in range(6):
        out.append(flip(pkl + 8 + rng.randrange(600), "in the pickled metadata"))
    for _ in range(6):
        out.append(flip(rng.randrange(cd_start, cd_end), "in the zip directory"))
    for _ in range(3):
        at = rng.randrange(size - 4096)
        out.append((f"4 KiB zeroed at byte {at}", good[:at] + bytes(4096) + good[at + 4096 :]))
    out.append(("random bytes of the same size", rng.randbytes(size)))
    out.append(("overwritten with text", b'{"step": 40, "model": "weights"}\n'))
    return out


def test_damaged_checkpoint_is_refused_by_name_and_prev_is_kept(tmp_path, reference_run, ledger):
    good_bytes = (reference_run / "checkpoint.pt").read_bytes()
    good = load_checkpoint(reference_run / "checkpoint.pt")
    prev_bytes = (reference_run / "checkpoint.prev.pt").read_bytes()
    prev_step = load_checkpoint(reference_run / "checkpoint.prev.pt")["step"]
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.prev.pt").write_bytes(prev_bytes)
    path = run / "checkpoint.pt"
    refused = harmless = 0
    for name, data in damaged_variants(good_bytes, random.Random(SEED)):
        with ledger.case("damaged_checkpoint", name) as case:
            path.write_bytes(data)
            case.guard(run)  # the reader may change nothing in the run, prev above all
            try:
                loaded = load_checkpoint(path)
            except CheckpointError as exc:
                msg = str(exc)
                assert str(path) in msg and "\n" not in msg, msg
                loaded = None
                refused += 1
                case.note = msg.replace(str(path), "checkpoint.pt")[:160]
            else:  # only acceptable when nothing torch reads was changed
                different = case.check(not same_content(loaded, good), READ_BACK)
                assert not different, "a damaged checkpoint loaded different content"
                harmless += 1
                case.note = "loaded unchanged (the flipped bit is in a byte torch does not read)"
            # The run directory still offers the last good checkpoint, untouched.
            found = latest_checkpoint(run)
            assert not case.check(found is None, "a good checkpoint is still found")
            expected = (
                ("checkpoint.pt", good["step"]) if loaded else ("checkpoint.prev.pt", prev_step)
            )
            assert (found[0].name, found[1]["step"]) == expected
    assert refused > 0


def test_resume_after_damage_continues_from_prev_and_matches(tmp_path, reference_run, ledger):
    good = (reference_run / "checkpoint.pt").read_bytes()
    rng = random.Random(SEED)
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x10  # in tensor data: only the checksum notices
    cases = [
        ("resume: checkpoint.pt empty", b""),
        ("resume: checkpoint.pt truncated", good[: rng.randrange(1, len(good))]),
        ("resume: checkpoint.pt bit-flipped in tensor data", bytes(flipped)),
    ]
    for i, (name, data) in enumerate(cases):
        run = tmp_path / f"run{i}"
        with ledger.case("damaged_checkpoint", name) as case:
            shutil.copytree(
                reference_run,
                run,
                ignore=shutil.ignore_patterns("metrics.json", "*.png", "history.*"),
            )
            (run / "checkpoint.pt").write_bytes(data)
            prev = (run / "checkpoint.prev.pt").read_bytes()
            code = main(["train", "--resume", str(run), "--data-dir", "sample", "--no-progress"])
            assert code == 0
            lost = case.check(not same_result(run, reference_run), SAME_AS_REFERENCE)
            assert not lost, "the resumed run differs from the uninterrupted one"
            # The good checkpoint the resume started from was never replaced by the damaged one.
            prev_kept = (run / "checkpoint.prev.pt").read_bytes() == prev
            assert not case.check(not prev_kept, "checkpoint.prev.pt byte for byte")
            case.note = "resumed from checkpoint.prev.pt; final weights identical"


def test_evaluate_names_the_damaged_file(tmp_path, reference_run, ledger, capsys):
    good = (reference_run / "checkpoint.pt").read_bytes()
    for name, data in [("evaluate: truncated", good[:1000]), ("evaluate: empty", b"")]:
        with ledger.case("damaged_checkpoint", name) as case:
            path = tmp_path / "damaged.pt"
            path.write_bytes(data)
            case.guard(tmp_path)
            capsys.readouterr()
            assert main(["evaluate", str(path), "--data-dir", "sample"]) == 2
            err = capsys.readouterr().err.strip()
            assert err.startswith("cifarlab: error: ") and str(path) in err, err
            assert len(err.splitlines()) == 1
