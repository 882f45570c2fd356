"""A restricted unpickler for CIFAR-10 and CIFAR-100 batch files.

The official batches are pickles, and a pickle can call any importable function
while it loads (``os.system`` included). A batch only ever needs numpy arrays,
lists, dicts, ints and strings, so :class:`RestrictedUnpickler` admits a fixed
table of numpy globals and refuses every other one in ``find_class`` -- that is,
when the global is named, before the call that would use it runs. Nothing is
imported on a pickle's behalf: the allowed objects come from our own table.
"""

from __future__ import annotations

import io
import pickle
import pickletools
from pathlib import Path
from typing import IO, Any

import numpy as np

from cifarlab.errors import DataError

# numpy's own reconstructors, taken from what numpy itself pickles with, so the
# table holds whatever this numpy version calls them (numpy.core in 1.x,
# numpy._core in 2.x) without importing a deprecated module path.
_RECONSTRUCT = np.zeros(0).__reduce__()[0]  # ndarray.__reduce__ -> _reconstruct (protocols <= 4)
_FROMBUFFER = np.zeros(1).__reduce_ex__(5)[0]  # protocol 5 -> _frombuffer

_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,  # Python 2 / numpy 1.x files
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,  # numpy 2.x, protocols 2-4
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,  # numpy 1.x, protocol 5
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,  # numpy 2.x, protocol 5
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}

# Python 3 writes bytes at protocol 2 as _codecs.encode(<str>, "latin1"); we admit
# only that exact use, through a wrapper that refuses any other codec.
_LATIN1 = {"latin1", "latin-1", "iso-8859-1", "iso8859-1", "l1"}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and plain containers; refuses every other global.

    ``name`` is used in error messages (a path, or ``archive:member``), and ``kind`` says
    whose batch it is ("CIFAR-10", "CIFAR-100"). Python 2 strings come back as bytes
    (``encoding="bytes"``), as in the official files.
    """

    def __init__(self, file: IO[bytes], *, name: str, kind: str = "CIFAR-10") -> None:
        super().__init__(file, encoding="bytes")
        self._name = name
        self._kind = kind

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("_codecs", "encode"):
            return self._latin1_encode
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise DataError(
                f"{self._name}: refused to unpickle {module}.{name} (a {self._kind} batch holds "
                "only numpy arrays, lists and strings); replace the file with a clean copy"
            ) from None

    def _latin1_encode(
        self, text: object, encoding: str = "utf-8", errors: str = "strict"
    ) -> bytes:
        if not isinstance(text, str) or str(encoding).lower() not in _LATIN1:
            raise DataError(
                f"{self._name}: refused to unpickle _codecs.encode with encoding {encoding!r} "
                "(only latin1 text is expected); replace the file with a clean copy"
            )
        return text.encode("latin1")


def check_opcodes(data: bytes, *, name: str, kind: str = "CIFAR-10") -> None:
    """Walk the pickle's opcodes without running them; refuse a damaged or abusive stream.

    pickletools checks every length field against the bytes that are really there, and
    we check memo indices: C pickle grows (and zero-fills) its memo up to the largest
    index a PUT names, so one damaged 4-byte index can make it write tens of gigabytes.
    A pickler numbers its memo entries 0, 1, 2, ...: an index past the opcode count is
    never legitimate.
    """
    try:
        for count, (op, arg, _) in enumerate(pickletools.genops(data)):
            if op.name in ("PUT", "BINPUT", "LONG_BINPUT") and not 0 <= int(arg) <= count:
                raise DataError(
                    f"{name}: damaged (memo index {arg} at opcode {count}); "
                    "replace the file with a clean copy"
                )
    except DataError:
        raise
    except Exception as exc:  # ValueError for truncated/unknown opcodes, and the like
        raise DataError(
            f"{name}: truncated or not a {kind} batch ({type(exc).__name__}); "
            "replace it with a clean copy"
        ) from None


def safe_load(path: Path) -> Any:
    """Unpickle the file at ``path`` with :class:`RestrictedUnpickler`."""
    data = Path(path).read_bytes()
    return safe_loads(data, name=str(path))


def safe_loads(data: bytes, *, name: str, kind: str = "CIFAR-10") -> Any:
    """Unpickle ``data`` (e.g. a tar member's bytes) with :class:`RestrictedUnpickler`;
    ``kind`` names the dataset in error messages."""
    check_opcodes(data, name=name, kind=kind)
    return RestrictedUnpickler(io.BytesIO(data), name=name, kind=kind).load()
