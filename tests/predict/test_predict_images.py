"""Reading pictures for `cifarlab predict`: every mode and bit depth reads as its 8-bit RGB
equivalent, a header declaring too many pixels is refused before any decoding, files and
folders accept the same formats, and each kind of non-regular file gets one accurate line."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import textwrap
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cifarlab import predict
from cifarlab.predict import (
    IMAGE_SUFFIXES,
    MAX_PIXELS,
    ImageReadError,
    collect_images,
    preprocess,
    read_image,
    to_rgb,
)

RNG = np.random.default_rng(0)
# 48×40: not square and not 32×32, so the centre crop and the resize both run.
GREY = RNG.integers(0, 256, (40, 48), dtype=np.uint8)
RGB = RNG.integers(0, 256, (40, 48, 3), dtype=np.uint8)
ALPHA = RNG.integers(0, 256, (40, 48), dtype=np.uint8)
ACCEPTED = "accepted: .png .jpg .jpeg .jfif .webp .gif .bmp .tif .tiff"


def net_input(rgb: np.ndarray) -> np.ndarray:
    """The (32, 32, 3) uint8 network input of a plain 8-bit RGB (or grey) picture."""
    return preprocess(Image.fromarray(rgb))


def write_png(path: Path, width: int, height: int, colour_type: int, depth: int, rows=b"") -> Path:
    """A PNG written chunk by chunk: PIL cannot write 16-bit colour, nor a header that lies."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    idat = zlib.compress(rows or b"\0" * 64)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
    return path


def png16(path: Path, samples: np.ndarray, colour_type: int) -> Path:
    """A 16-bit PNG of (H, W, channels) uint16 samples."""
    h, w = samples.shape[:2]
    raw = samples.astype(">u2").reshape(h, -1).tobytes()
    row = len(raw) // h
    rows = b"".join(b"\0" + raw[i * row : (i + 1) * row] for i in range(h))  # filter 0 per row
    return write_png(path, w, h, colour_type, 16, rows)


def on_white(colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """colour over white by alpha, the composite the reader promises."""
    a = alpha[..., None].astype(np.float64) / 255
    return np.rint(colour * a + 255 * (1 - a)).astype(np.uint8)


# --- 1. every mode and bit depth -------------------------------------------------------


def test_16_bit_png_reads_exactly_as_its_8_bit_equivalent(tmp_path):
    Image.fromarray(GREY).save(tmp_path / "g8.png")
    Image.fromarray(GREY.astype(np.uint16) * 257).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode == "I;16"
    # Tolerance 0: the same (32, 32, 3) input, so the same normalised tensor.
    assert np.array_equal(read_image(tmp_path / "g16.png"), read_image(tmp_path / "g8.png"))
    # The scale is the full 16-bit range: 65535 → 255, 257 → 1, 32896 = 128·257 → 128.
    ramp = Image.fromarray(np.array([[0, 128, 257, 32896, 65535]], np.uint16))
    assert np.asarray(to_rgb(ramp))[0, :, 0].tolist() == [0, 0, 1, 128, 255]


def _high_depth_cases(tmp_path: Path) -> dict[str, Image.Image]:
    """The grey picture GREY in every mode of more than 8 bits PIL gives, at full range."""
    g16 = GREY.astype(np.uint16) * 257
    cases = {
        mode: Image.frombytes(mode, (48, 40), g16.astype(dtype).tobytes())
        for mode, dtype in (("I;16", "<u2"), ("I;16B", ">u2"), ("I;16L", "<u2"), ("I;16N", "=u2"))
    }
    # TIFF as PIL writes them: I is signed 32-bit (white 2³¹−1), F is 0..1.
    int32 = np.rint(GREY / 255 * (2**31 - 1)).astype(np.int32)
    Image.fromarray(int32).save(tmp_path / "i.tif")
    Image.fromarray((GREY / 255).astype(np.float32)).save(tmp_path / "f.tif")
    cases["I (TIFF int32)"] = Image.open(tmp_path / "i.tif")
    cases["F (TIFF float32)"] = Image.open(tmp_path / "f.tif")
    return cases


@pytest.mark.parametrize(
    "mode", ["I;16", "I;16B", "I;16L", "I;16N", "I (TIFF int32)", "F (TIFF float32)"]
)
def test_high_bit_depth_grey_reads_as_its_8_bit_equivalent(tmp_path, mode):
    img = _high_depth_cases(tmp_path)[mode]
    assert img.mode == mode.split()[0]
    white = predict.white_level(img)  # read_image takes it from the file before any rotation
    assert np.array_equal(preprocess(img, white), net_input(GREY))  # tolerance 0
    if img.mode in ("I", "F"):
        assert np.array_equal(read_image(img.filename), net_input(GREY))


def test_the_white_level_is_the_top_of_the_files_own_range():
    from types import SimpleNamespace as Fake  # PIL writes no 12-bit or 16-bit signed TIFF

    assert predict.white_level(Fake(mode="I;16B")) == 65535  # PNG: no tags, all 16 bits
    assert predict.white_level(Fake(mode="I;16", tag_v2={258: (12,), 339: (1,)})) == 4095
    assert predict.white_level(Fake(mode="I", tag_v2={258: (16,), 339: (2,)})) == 32767
    assert predict.white_level(Fake(mode="I")) == 2**31 - 1
    assert predict.white_level(Fake(mode="F")) == 1.0
    assert predict.white_level(Fake(mode="RGB")) is None


def _palette(colours: int = 64) -> tuple[Image.Image, np.ndarray]:
    img = Image.fromarray(RGB).quantize(colours)
    lut = np.array(img.getpalette(), np.uint8).reshape(-1, 3)
    return img, lut[np.asarray(img)]


def _make(kind: str, tmp_path: Path) -> tuple[Path | Image.Image, np.ndarray]:
    """(a picture in ``kind``, the 8-bit RGB it must read as)."""
    f = tmp_path / "pic.png"
    if kind == "1":
        Image.fromarray(GREY > 127).save(f)
        return f, np.where(GREY > 127, 255, 0).astype(np.uint8)
    if kind == "L":
        Image.fromarray(GREY).save(f)
        return f, GREY
    if kind == "L with tRNS":  # one grey value transparent: it shows white
        Image.fromarray(GREY).save(f, transparency=int(GREY[20, 24]))
        return f, np.where(GREY == GREY[20, 24], 255, GREY).astype(np.uint8)
    if kind == "I;16 with tRNS":
        Image.fromarray(GREY.astype(np.uint16) * 257).save(f, transparency=int(GREY[20, 24]) * 257)
        return f, np.where(GREY == GREY[20, 24], 255, GREY).astype(np.uint8)
    if kind == "P":
        img, rgb = _palette()
        img.save(f)
        return f, rgb
    if kind == "P with tRNS":  # palette entry 0 transparent
        img, rgb = _palette()
        img.save(f, transparency=0)
        return f, np.where((np.asarray(img) == 0)[..., None], 255, rgb).astype(np.uint8)
    if kind == "PA":  # PIL writes no PA file: in memory
        img, rgb = _palette()
        img = img.convert("PA")
        img.putalpha(Image.fromarray(ALPHA))
        return img, on_white(rgb, ALPHA)
    if kind == "LA":
        Image.fromarray(np.stack([GREY, ALPHA], -1)).save(f)
        return f, on_white(np.repeat(GREY[..., None], 3, -1), ALPHA)
    if kind == "RGB":
        Image.fromarray(RGB).save(f)
        return f, RGB
    if kind == "RGB with tRNS":  # one colour transparent
        key = tuple(int(v) for v in RGB[20, 24])
        Image.fromarray(RGB).save(f, transparency=key)
        return f, np.where((RGB == key).all(-1)[..., None], 255, RGB).astype(np.uint8)
    if kind == "RGBA":
        Image.fromarray(np.dstack([RGB, ALPHA])).save(f)
        return f, on_white(RGB, ALPHA)
    if kind == "RGB 16-bit":
        return png16(f, RGB.astype(np.uint16) * 257, colour_type=2), RGB
    if kind == "RGBA 16-bit":
        rgba = np.dstack([RGB, ALPHA]).astype(np.uint16) * 257
        return png16(f, rgba, colour_type=6), on_white(RGB, ALPHA)
    if kind in ("CMYK TIFF", "CMYK JPEG"):
        y, x = np.mgrid[0:40, 0:48]  # smooth, so JPEG keeps it to within a step or two
        cmyk = np.stack([x * 5, y * 6, (x + y) * 2, (x * y) % 64], -1).astype(np.uint8)
        f = tmp_path / ("pic.tif" if "TIFF" in kind else "pic.jpg")
        Image.frombytes("CMYK", (48, 40), cmyk.tobytes()).save(f, quality=100)
        ink = 255 - cmyk.astype(np.float64)  # R = 255·(1−C)(1−K), and so on
        return f, np.rint(ink[..., :3] * ink[..., 3:] / 255).astype(np.uint8)
    if kind == "YCbCr":  # what JPEGs hold inside; PIL hands it over only in memory
        return Image.fromarray(RGB).convert("YCbCr"), RGB
    if kind == "animated GIF":  # the first frame, not the second
        first, rgb = _palette()
        second = Image.new("P", first.size, 7)
        second.putpalette(first.getpalette())
        f = tmp_path / "pic.gif"
        first.save(f, save_all=True, append_images=[second], duration=100, loop=0)
        return f, rgb
    if kind == "EXIF orientation 6":  # stored on its side; rotate 90° clockwise to view
        exif = Image.Exif()
        exif[0x0112] = 6
        Image.fromarray(RGB).save(f, exif=exif)
        return f, np.rot90(RGB, k=-1)
    raise AssertionError(kind)


# Largest step allowed between the reader's input and that of the 8-bit equivalent: 0 where
# the conversion is exact, 1 for rounding of alpha and CMYK arithmetic, 3 for lossy JPEG and
# PIL's 8-bit fixed-point YCbCr.
KINDS = {
    "1": 0,
    "L": 0,
    "L with tRNS": 0,
    "I;16 with tRNS": 0,
    "P": 0,
    "P with tRNS": 0,
    "PA": 1,
    "LA": 1,
    "RGB": 0,
    "RGB with tRNS": 0,
    "RGBA": 1,
    "RGB 16-bit": 0,
    "RGBA 16-bit": 1,
    "CMYK TIFF": 1,
    "CMYK JPEG": 3,
    "YCbCr": 3,
    "animated GIF": 0,
    "EXIF orientation 6": 0,
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_mode_reads_as_its_8_bit_rgb_equivalent(tmp_path, kind):
    picture, rgb = _make(kind, tmp_path)
    got = read_image(picture) if isinstance(picture, Path) else preprocess(picture)
    diff = np.abs(got.astype(int) - net_input(np.ascontiguousarray(rgb)).astype(int))
    assert diff.max() <= KINDS[kind], f"{kind}: off by up to {diff.max()}"


# --- 2. the pixel budget ---------------------------------------------------------------

OVER_BUDGET = {  # declared sizes; each file is 69 bytes
    "just over": (10_000, MAX_PIXELS // 10_000 + 1),
    "past PIL's warning": (15_000, 10_000),  # 150 MP: PIL would warn on opening
    "past PIL's error": (100_000, 100_000),  # 10 gigapixels: PIL refuses while opening
}


@pytest.mark.parametrize("case", list(OVER_BUDGET))
def test_a_header_over_the_pixel_budget_is_refused_in_one_line_without_warnings(
    tmp_path, recwarn, case
):
    import warnings

    warnings.simplefilter("always")  # any warning that escapes is recorded
    w, h = OVER_BUDGET[case]
    f = write_png(tmp_path / "big.png", w, h, colour_type=6, depth=8)
    with pytest.raises(ImageReadError) as err:
        read_image(f)
    msg = str(err.value)
    assert msg.startswith(f"{f}: refused: ") and "\n" not in msg
    assert f"more than the {MAX_PIXELS // 10**6}-megapixel limit" in msg
    if case != "past PIL's error":  # there PIL raises before we see the size
        assert f"{w}×{h} pixels" in msg
    assert [str(x.message) for x in recwarn] == []


def test_the_pixel_budget_is_a_limit_on_width_times_height(tmp_path, monkeypatch):
    monkeypatch.setattr(predict, "MAX_PIXELS", 48 * 40)
    Image.fromarray(RGB).save(tmp_path / "at.png")
    Image.fromarray(np.zeros((40, 49, 3), np.uint8)).save(tmp_path / "over.png")
    assert read_image(tmp_path / "at.png").shape == (32, 32, 3)
    with pytest.raises(ImageReadError, match="49×40 pixels, more than"):
        read_image(tmp_path / "over.png")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmSize from /proc")
def test_a_refused_header_is_never_decoded_even_with_little_memory(tmp_path):
    # A child process may grow only 256 MiB past its start; the PNG declares 15000×10000 RGBA
    # (600 MB decoded). The control shows the limit bites: PIL cannot allocate that picture.
    f = write_png(tmp_path / "big.png", 15_000, 10_000, colour_type=6, depth=8)
    child = textwrap.dedent(
        f"""
        import resource, sys
        from PIL import Image
        from cifarlab.predict import ImageReadError, read_image
        status = open("/proc/self/status").read().split("VmSize:")[1]
        start = int(status.split()[0]) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (start + 256 * 2**20, resource.RLIM_INFINITY))
        try:
            Image.new("RGBA", (15_000, 10_000))
        except MemoryError:
            print("control: MemoryError")
        try:
            read_image({str(f)!r})
        except ImageReadError as exc:
            print(exc)
        """
    )
    res = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True)
    assert res.returncode == 0 and res.stderr == "", res.stderr[-2000:]
    assert res.stdout.splitlines() == [
        "control: MemoryError",
        f"{f}: refused: 15000×10000 pixels, more than the {MAX_PIXELS // 10**6}-megapixel limit "
        "(shrink it first)",
    ]


# --- 3. one set of accepted formats ----------------------------------------------------


def test_files_and_folders_accept_the_same_formats(tmp_path):
    img, rgb = _palette()  # 64 colours: lossless in GIF too
    folder = tmp_path / "pictures"
    (folder / "sub").mkdir(parents=True)
    names = ["a.png", "b.JPG", "c.jpeg", "d.jfif", "e.webp", "f.gif", "g.BMP", "h.tif"]
    names.append("sub/i.TIFF")
    for name in names:
        suffix = Path(name).suffix.lower()
        fmt = {".jfif": "JPEG"}.get(suffix)  # PIL does not know the name .jfif
        (img if suffix == ".gif" else img.convert("RGB")).save(folder / name, fmt, lossless=True)
    (folder / "notes.txt").write_text("not a picture\n")
    Image.fromarray(RGB).save(folder / ".hidden.png")  # e.g. macOS ._ files: skipped

    files, errors = collect_images([folder])
    assert errors == [] and files == sorted(folder / n for n in names)
    named, errors = collect_images([folder / n for n in names])
    assert errors == [] and named == [folder / n for n in names]
    for f in files:
        got = read_image(f)
        if f.suffix.lower() in (".jpg", ".jpeg", ".jfif"):
            assert got.shape == (32, 32, 3)
        else:  # lossless: exactly the picture
            assert np.array_equal(got, net_input(rgb)), f


def test_the_accepted_formats_are_listed_where_something_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("not a picture\n")
    Image.fromarray(RGB).save(tmp_path / "picture.ppm")
    # The same PPM named .png: only PNG/JPEG/WebP/GIF/BMP/TIFF decoders are ever tried.
    (tmp_path / "ppm.png").write_bytes((tmp_path / "picture.ppm").read_bytes())
    no_pictures = tmp_path / "no-pictures"
    no_pictures.mkdir()
    (no_pictures / "notes.txt").write_text("not a picture\n")

    files, errors = collect_images([tmp_path / "notes.txt", tmp_path / "picture.ppm", no_pictures])
    assert files == []
    assert errors == [
        (str(tmp_path / "notes.txt"), f"not named like a picture ({ACCEPTED})"),
        (str(tmp_path / "picture.ppm"), f"not named like a picture ({ACCEPTED})"),
        (str(no_pictures), f"a folder with no picture files in it ({ACCEPTED})"),
    ]
    with pytest.raises(ImageReadError, match=r"ppm.png: not a PNG, JPEG, WebP, GIF, BMP or TIFF"):
        read_image(tmp_path / "ppm.png")
    assert predict.ACCEPTED == ACCEPTED == "accepted: " + " ".join(IMAGE_SUFFIXES)


def test_predict_help_states_the_formats_and_the_pixel_budget():
    import argparse

    from cifarlab.cli import predict_cmd

    sub = argparse.ArgumentParser().add_subparsers()
    predict_cmd.add_parser(sub)
    text = " ".join(sub.choices["predict"].description.split())
    assert " ".join(IMAGE_SUFFIXES) in text
    assert f"more than {MAX_PIXELS // 10**6} megapixels is refused" in text


# --- 4. non-regular files --------------------------------------------------------------


class Hung(Exception):
    """Raised by the alarm: reading blocked."""


@contextmanager
def no_hang(seconds: int = 30):
    def alarm(signum, frame):
        raise Hung(f"blocked for {seconds} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs and /dev/null are POSIX")
def test_each_kind_of_non_regular_file_gets_its_own_accurate_line(tmp_path, predict_run, capsys):
    from cifarlab.cli.main import main

    folder = tmp_path / "pictures"
    folder.mkdir()
    Image.fromarray(RGB).save(folder / "good.png")
    os.mkfifo(folder / "pipe.png")  # nobody ever writes: opening it for reading could block
    (folder / "device.png").symlink_to("/dev/null")
    (folder / "broken.png").symlink_to(folder / "deleted.png")
    (folder / "empty.png").mkdir()  # a folder named like a picture
    expected = {
        "pipe.png": "not a regular file (FIFO)",
        "device.png": "not a regular file (character device)",
        "broken.png": f"dangling symbolic link (to {folder / 'deleted.png'}, which does not exist)",
        "empty.png": "not a regular file (directory)",
        "gone.png": "no such file or folder",
    }
    with no_hang():
        for name, why in expected.items():
            with pytest.raises(ImageReadError) as err:
                read_image(folder / name)
            assert str(err.value) == f"{folder / name}: {why}"

        # Through the CLI: the folder walk reports them too, a folder named like a picture is
        # searched, and the good picture is still predicted (exit 1: some failed).
        argv = ["predict", str(predict_run), str(folder), str(folder / "empty.png")]
        code = main([*argv, str(folder / "gone.png")])
    out, err = capsys.readouterr()
    assert code == 1
    assert sorted(err.splitlines()) == sorted(
        f"cifarlab: error: {folder / name}: {why}"
        for name, why in {
            **expected,
            "empty.png": f"a folder with no picture files in it ({ACCEPTED})",
        }.items()
    )
    lines = out.splitlines()  # the header, then good.png (long names start with "…")
    assert len(lines) == 2 and lines[1].split()[0].endswith("pictures/good.png")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads anyway")
def test_a_file_it_may_not_read_is_reported_as_permission_denied(tmp_path):
    f = tmp_path / "secret.png"
    Image.fromarray(RGB).save(f)
    f.chmod(0)
    try:
        with pytest.raises(ImageReadError) as err:
            read_image(f)
    finally:
        f.chmod(0o600)
    assert str(err.value) == f"{f}: permission denied (cannot open it for reading)"
