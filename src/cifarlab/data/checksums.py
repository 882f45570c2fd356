"""The md5 sums of the CIFAR-10 and CIFAR-100 batch files we know, and the check of a folder
against them.

A batch pickle carries no checksum of its own: a changed pixel or label byte that keeps
the pickle valid reads as different data. So, as torchvision's ``CIFAR10`` does, the
python layout is verified file by file against known md5 sums, and a mismatch is
refused. The sums known here are:

- the official ``cifar-10-python.tar.gz``'s files (the list torchvision checks);
- a lossless rebuild of CIFAR-10 whose images are in another (fixed, shuffled) order, so
  its sums differ from the official ones; they are the ones its own MD5SUMS gives;
- the bundled sample's (``scripts/make_sample.py`` rebuilds it: update them with it);
- a copy of the user's own: the sums in an ``MD5SUMS`` file inside its
  ``cifar-10-batches-py/`` folder, in ``md5sum``'s format. Writing that file is how a
  user vouches for a re-saved copy (docs/guide/data.md); from then on it is verified
  like the others.

All seven files must match one copy: a folder mixing two copies' files (a training batch
of the reordered copy beside the official ones) would hold some images twice.

CIFAR-100's python layout (``cifar-100-python/``: ``train``, ``test``, ``meta``) is verified
the same way against :data:`KNOWN_COPIES_100`: the official files (the sums torchvision's
``CIFAR100`` checks), the bundled CIFAR-100 sample's, and a user's own ``MD5SUMS``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cifarlab.errors import DataError

SUMS_FILE = "MD5SUMS"
_SUMS_LIMIT = 64 * 1024  # seven lines are ~350 bytes; more is not a sums file
RECORD_HINT = "md5sum batches.meta data_batch_? test_batch > MD5SUMS"


@dataclass(frozen=True)
class KnownCopy:
    """One copy of CIFAR-10's python layout: what to call it, and each file's md5."""

    label: str
    md5: Mapping[str, str]


OFFICIAL = KnownCopy(
    "the official CIFAR-10",
    {
        "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
        "data_batch_1": "c99cafc152244af753f735de768cd75f",
        "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
        "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
        "data_batch_4": "634d18415352ddfa80567beed471001a",
        "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
        "test_batch": "40351d587109b95175f43aff81a1287e",
    },
)
REORDERED = KnownCopy(
    "the reordered lossless copy",
    {
        "batches.meta": "56a2023d12d9afdf5284508eeb834c17",
        "data_batch_1": "59b62583ccaf5c93763d65278eee68ec",
        "data_batch_2": "a7440d001f73b526cf1aedd7cb55305d",
        "data_batch_3": "3e34ba1eb07da7e9178a261049caf4e8",
        "data_batch_4": "0faedf076571fea61132dd3c75ab0abb",
        "data_batch_5": "047d2b97bcb3807658a23ea23541c4ce",
        "test_batch": "224a3550ba00974b289b57f776055274",
    },
)
SAMPLE = KnownCopy(
    "the bundled sample",
    {
        "batches.meta": "01ec402b4e2fd4cf4f95ae1488c46a56",
        "data_batch_1": "4a7e6e5dcb793346146e1b43b7994a7b",
        "data_batch_2": "fa83cf94883dd2abb6b8f9f7300e5f56",
        "data_batch_3": "b3929eedff7ae85f7b24f403f82649ad",
        "data_batch_4": "f11fecae67140be73218e18479312f3d",
        "data_batch_5": "97083e048a5fbbfe293c0c26443f856d",
        "test_batch": "f425304cfeb5bba511698417e546a1dc",
    },
)
KNOWN_COPIES = (OFFICIAL, REORDERED, SAMPLE)

OFFICIAL_100 = KnownCopy(
    "the official CIFAR-100",
    {
        "meta": "7973b15100ade9c7d40fb424638fde48",
        "train": "16019d7e3df5f24257cddd939b257f8d",
        "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
    },
)
SAMPLE_100 = KnownCopy(
    "the bundled CIFAR-100 sample",
    {
        "meta": "8f7df174b924b65ff60a6a0fcc5b2fec",
        "train": "d03e613b7068cf2bac73b284083c3326",
        "test": "aaa5dd8a0c88a5f0ce4965c74eb276dc",
    },
)
KNOWN_COPIES_100 = (OFFICIAL_100, SAMPLE_100)
RECORD_HINT_100 = "md5sum meta train test > MD5SUMS"

# md5sum's "HASH  NAME" / "HASH *NAME", md5 -r's "HASH NAME", and BSD md5's "MD5 (NAME) = HASH".
_GNU_LINE = re.compile(r"([0-9a-fA-F]{32}) [ *]?(.+)")
_BSD_LINE = re.compile(r"MD5 \((.+)\) = ([0-9a-fA-F]{32})")


def md5_hex(data: bytes) -> str:
    """The md5 of ``data`` as lowercase hex (a checksum here, not a security measure)."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def read_sums_file(folder: Path) -> KnownCopy | None:
    """The copy described by ``folder/MD5SUMS``; None when there is no such file.

    Names may carry a folder (``cifar-10-batches-py/data_batch_1``, from md5sum run one
    level up): the file name is what counts. Other files listed (a readme) are ignored.
    """
    path = Path(folder) / SUMS_FILE
    if not path.exists() and not path.is_symlink():
        return None
    fix = "fix it (see docs/guide/data.md) or remove it"
    try:
        with open(path, "rb") as f:
            raw = f.read(_SUMS_LIMIT + 1)
        if len(raw) > _SUMS_LIMIT:
            raise DataError(
                f"{path}: larger than {_SUMS_LIMIT:,} bytes, not a list of md5 sums; {fix}"
            )
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text, not a list of md5 sums; {fix}") from None
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise DataError(f"{path}: cannot be read ({why}); {fix}") from None
    sums: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if gnu := _GNU_LINE.fullmatch(line):
            digest, name = gnu.groups()
        elif bsd := _BSD_LINE.fullmatch(line):
            name, digest = bsd.groups()
        else:
            raise DataError(f"{path}: line {number} is not 'MD5  FILE' (md5sum's output); {fix}")
        name = name.replace("\\", "/").rsplit("/", 1)[-1]
        if sums.get(name, digest.lower()) != digest.lower():
            raise DataError(f"{path}: lists {name} twice with different sums; {fix}")
        sums[name] = digest.lower()
    return KnownCopy(f"the sums in {path}", sums)


def verify_copy(
    folder: Path,
    found: Mapping[str, str],
    *,
    known: tuple[KnownCopy, ...] = KNOWN_COPIES,
    dataset: str = "CIFAR-10",
    record_hint: str = RECORD_HINT,
) -> KnownCopy:
    """The known copy whose sums all of ``found`` (file name -> md5) match, else DataError.

    The one-line error names the first file that differs from the copy the most files
    match: "damaged or changed" when the others match it, "unknown copy" when none does.
    ``known``, ``dataset`` and ``record_hint`` default to CIFAR-10's; CIFAR-100 passes
    :data:`KNOWN_COPIES_100`, "CIFAR-100" and :data:`RECORD_HINT_100`.
    """
    folder = Path(folder)
    own = read_sums_file(folder)
    copies = (*known, own) if own is not None else known
    best: tuple[KnownCopy, list[str]] | None = None
    for copy in copies:
        wrong = [name for name, digest in found.items() if copy.md5.get(name) != digest]
        if not wrong:
            return copy
        if best is None or len(wrong) < len(best[1]):
            best = (copy, wrong)
    assert best is not None  # known is never empty
    copy, wrong = best
    name = wrong[0]
    path = folder / name
    record = f"record your copy's sums: cd {folder} && {record_hint}"
    if len(wrong) < len(found):
        expected = copy.md5.get(name)
        differs = f"not {expected}" if expected else "not listed"
        raise DataError(
            f"{path}: damaged or changed (md5 {found[name]}, {differs} in {copy.label}, "
            "which the other files match); replace it with a clean copy, or if you changed "
            f"it on purpose, {record}"
        )
    raise DataError(
        f"{path}: md5 {found[name]} is no known {dataset} file's, nor are the other files' "
        f"(damaged, or a copy re-saved by someone); replace the folder with a clean copy, "
        f"or if you trust this one, {record}"
    )
