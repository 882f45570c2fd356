"""`cifarlab data --locate`: where the data is, found without reading or downloading it
(scripts/quickstart.sh picks its data with it)."""

from __future__ import annotations

import pytest

from cifarlab.cli.main import main


def _locate(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(["data", "--locate", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_with_no_copy_anywhere_it_names_the_sample_and_downloads_nothing(own_cache, capsys):
    rc, out, err = _locate(capsys)
    assert (rc, out, err) == (0, "sample\n", "")
    assert not own_cache.exists()  # no download started, no cache folder made


def test_it_names_the_copy_in_the_cache(own_cache, helpers, capsys):
    folder = helpers.copy_sample(own_cache / "cifar10")
    rc, out, _ = _locate(capsys)
    assert (rc, out) == (0, f"{folder}\n")


def test_it_names_the_tarball_in_the_cache(own_cache, helpers, tmp_path, capsys):
    (own_cache / "cifar10").mkdir(parents=True)
    tarball = helpers.make_tarball(
        helpers.copy_sample(tmp_path), own_cache / "cifar10" / "cifar-10-python.tar.gz"
    )
    rc, out, _ = _locate(capsys)
    assert (rc, out) == (0, f"{tarball}\n")


def test_CIFARLAB_DATA_comes_before_the_cache(own_cache, helpers, tmp_path, monkeypatch, capsys):
    helpers.copy_sample(own_cache / "cifar10")
    mine = helpers.copy_sample(tmp_path / "mine")
    monkeypatch.setenv("CIFARLAB_DATA", str(tmp_path / "mine"))
    rc, out, _ = _locate(capsys)
    assert (rc, out) == (0, f"{mine}\n")


def test_a_CIFARLAB_DATA_without_a_copy_is_one_error_line(own_cache, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CIFARLAB_DATA", str(tmp_path))
    rc, out, err = _locate(capsys)
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("cifarlab: error: CIFAR-10 not found in ")
    assert "(from CIFARLAB_DATA)" in err


@pytest.mark.parametrize("given", ["sample", "dir"])
def test_a_data_dir_given_is_the_answer(given, own_cache, helpers, tmp_path, capsys):
    arg = "sample" if given == "sample" else str(helpers.copy_sample(tmp_path))
    rc, out, _ = _locate(capsys, "--data-dir", arg)
    assert (rc, out) == (0, f"{arg}\n")
