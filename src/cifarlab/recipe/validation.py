"""Recipes: complete, typed training configurations, stored as TOML.

A recipe is data (STYLE.md 3): every number of a run lives here, with its unit
in a comment, and the resolved recipe is written into every run directory.
Built-in recipes ship in ``cifarlab/recipes/*.toml``; a user file may start
from one with ``base = "NAME"`` and change only what differs. ``--set
section.key=value`` overrides any field, parsed as a TOML value.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import stat
import sys
import types
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from cifarlab.errors import RecipeError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

OPTIMIZERS = ("sgd", "adam", "adamw", "muon")
SCHEDULES = ("constant", "step", "cosine", "linear")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda", "mps")
TTA_MODES = ("none", "flip", "flip-translate")

# Limits on what a new run may ask for: each a typo's guard, far from any real recipe.
# The longest built-in run, resnet18 (200 epochs of batch 128), takes 70,400 optimizer steps
# on its 45,000-image split and at most 200 x 391 = 78,200 on all 50,000 images; the default
# cap is ~13x that (a batch-128 run of 2,560 epochs). A longer run says so with
# --set train.max_steps=N.
DEFAULT_MAX_STEPS = 1_000_000
# Epochs beyond this are refused outright, max_steps or not: the longest built-in has 200,
# and at one step per epoch (a batch of the whole split) 1e6 epochs is the default cap.
MAX_EPOCHS = 1_000_000
# The up-front run-length check, before any data is read, assumes CIFAR-10's training set;
# check_run_length repeats it on the real split once the data is loaded.
CIFAR10_TRAIN_IMAGES = 50_000
IMAGE_SIDE = 32  # pixels: every image is 32x32 (data/readers.IMAGE_SHAPE)
MIN_RESOLUTION = 8  # train.resolutions; a size the model cannot take is refused when it is built
# Free text is copied into recipe.toml, every checkpoint, metrics and reports. The longest
# built-in description is 162 characters; a name also becomes directory names and plot
# titles (most file systems allow 255 bytes per path component).
MAX_TEXT = {"name": 200, "description": 2_000}
# A recipe (or ladder) file is a few kilobytes of settings (the largest built-in, fast94.toml,
# is 3.4 KB); anything over 1 MiB is not one, and is refused before it is read.
MAX_FILE_BYTES = 1 << 20
MAX_THREADS = 1024  # system.threads: more is a typo, not a machine
# augment.mixup / augment.cutmix: Beta(a, a) alphas. Below 0.01 the gamma draws behind the Beta
# sampler underflow (measured: at a = 0.001 the weights' variance is 0.19, not 0.25); above 100
# the weight is 0.5 +- 0.035, mixup of every pair by halves; timm's defaults are 0.8 and 1.0.
MIN_MIX_ALPHA, MAX_MIX_ALPHA = 0.01, 100.0


@dataclass
class DataConfig:
    source: str = (
        "auto"  # "auto" (full CIFAR-10 when found, else the bundled sample), "sample", or a path
    )
    val_fraction: float = 0.2  # share of the training set held out for validation (report: 80/20)
    split_seed: int = 42  # fixed across seeds, as the report's train_test_split(random_state=42)
    mean: list[float] = field(
        default_factory=lambda: [0.5, 0.5, 0.5]
    )  # per channel, on the [0, 1] scale
    std: list[float] = field(
        default_factory=lambda: [0.5, 0.5, 0.5]
    )  # per channel, on the [0, 1] scale


@dataclass
class AugmentConfig:
    flip: bool = False  # random horizontal flip, p = 0.5
    flip_alternate: bool = False  # with flip: each image mirrored in every other epoch (airbench)
    translate: int = 0  # pixels: random crop of the image padded by this many pixels
    pad_mode: str = "reflect"  # "reflect" or "zeros" (torchvision RandomCrop's default fill)
    brightness: float = 0.0  # colour jitter: factor drawn from [1 - b, 1 + b] per image
    contrast: float = 0.0  # colour jitter: factor drawn from [1 - c, 1 + c] per image
    saturation: float = 0.0  # colour jitter: factor drawn from [1 - s, 1 + s] per image
    cutout: int = 0  # pixels: side of a square zeroed at a random centre (0 = off)
    # The regularisers of issue 17, all off by default (data/augment.py has their definitions).
    trivial_augment: bool = False  # TrivialAugmentWide per image: 1 of 14 ops, 31 magnitude bins
    random_erasing: float = 0.0  # probability per image of a black box (RandomErasing's defaults)
    mixup: float = 0.0  # Beta(a, a) of mixup's per-batch weight (0 = off); soft-target loss
    cutmix: float = 0.0  # Beta(a, a) of cutmix's box area (0 = off); with mixup: one per batch


@dataclass
class ModelConfig:
    name: str = "seednet"  # a registered model (cifarlab models)
    options: dict[str, Any] = field(default_factory=dict)  # passed to the model's factory


@dataclass
class OptimConfig:
    """The optimiser, and per parameter role (models name them; see train/optim.py) its options.

    Learning rates are per step on the batch's mean loss. The ``bias_*`` and ``head_lr``
    options apply to models that name those roles (fastnet); absent, a role gets ``lr``
    and ``momentum``. Each role's weight decay is ``weight_decay`` x lr / (its lr), so the
    decay per step, lr x weight decay, is the same in every role.
    """

    name: str = "adam"  # one of OPTIMIZERS
    lr: float = 1e-3  # peak learning rate (Muon: of the filters' orthogonalised update)
    momentum: float = 0.9  # SGD / Muon momentum
    nesterov: bool = False  # SGD / Muon
    weight_decay: float = 0.0  # L2 (Adam, SGD) or decoupled (AdamW)
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # Adam / AdamW
    bias_lr: float | None = None  # peak lr of the "biases" role (biases, norm shifts); absent: lr
    head_lr: float | None = None  # peak lr of the "head" role (classifier weights); absent: lr
    bias_momentum: float | None = None  # SGD / Muon momentum of biases and head; absent: momentum
    weight_norm: bool = False  # Muon: filters held at norm sqrt(out_channels), not decayed


@dataclass
class ScheduleConfig:
    name: str = "constant"  # one of SCHEDULES
    warmup: float = 0.0  # fraction of all steps with a linear warm-up from 0 to the peak lr
    final_lr: float = 0.0  # cosine / linear: lr at the last step, as a fraction of the peak
    milestones: list[float] = field(
        default_factory=lambda: [0.5, 0.75]
    )  # step: fractions of training
    gamma: float = 0.1  # step: lr multiplier at each milestone


@dataclass
class TrainConfig:
    epochs: float = 10  # passes over the training split (fractions allowed)
    batch_size: int = 32  # global batch (images per optimizer step, over all processes)
    eval_points: int = 25  # evenly spaced validation points (report: 25)
    label_smoothing: float = 0.0  # cross-entropy label smoothing
    checkpoint_every: int = 0  # steps between extra checkpoints (0: at evaluation points only)
    grad_clip: float = 0.0  # max gradient norm (0 = off)
    max_steps: int = DEFAULT_MAX_STEPS  # optimizer steps a run may take; a longer run is refused
    ema: float = 0.0  # decay per step of an EMA of the weights, which are then evaluated (0 = off)
    # Also keep checkpoint.best.pt: the checkpoint of the evaluation point with the highest
    # validation accuracy (never the test set's); needs data.val_fraction > 0.
    keep_best: bool = False
    # Progressive resizing: training images are resized (bilinear, antialiased) to
    # resolutions[k] from resolution_milestones[k-1] (a fraction of training) on; [] = native
    # size throughout. Evaluation is always at the native size.
    resolutions: list[int] = field(default_factory=list)
    resolution_milestones: list[float] = field(default_factory=list)


@dataclass
class EvalConfig:
    tta: str = "none"  # test-time augmentation for the final test accuracy: one of TTA_MODES
    batch_size: int = 1000  # images per evaluation batch


@dataclass
class SystemConfig:
    device: str = "auto"  # one of DEVICES
    precision: str = "auto"  # autocast dtype; "auto": bf16 on CUDA and on CPUs with native bf16
    channels_last: bool = False  # memory format for conv nets
    compile: bool = False  # torch.compile the model (CUDA)
    threads: int = 0  # torch intra-op threads (0 = torch's default)
    sync_bn: bool = False  # distributed runs: SyncBatchNorm


@dataclass
class Recipe:
    name: str = "custom"
    description: str = ""
    seed: int = 0  # model init, data order, augmentation and dropout
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    system: SystemConfig = field(default_factory=SystemConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_toml(self) -> str:
        return dumps_toml(self.to_dict())


# --------------------------------------------------------------------------- loading


def builtin_recipes() -> list[str]:
    """Names of the recipes shipped with cifarlab."""
    folder = resources.files("cifarlab") / "recipes"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_recipe(
    name_or_path: str | Path | Recipe | dict,
    overrides: dict[str, Any] | list[str] | None = None,
) -> Recipe:
    """A recipe by built-in name, TOML path, dict or Recipe, with overrides applied and checked."""
    if isinstance(name_or_path, Recipe):
        raw = name_or_path.to_dict()
    elif isinstance(name_or_path, dict):  # a deep copy: overrides must not reach the caller's
        raw = _resolve_base(copy.deepcopy(name_or_path), seen=())
    else:
        raw = _read_raw(str(name_or_path), seen=())
    if overrides:
        if not isinstance(overrides, dict):
            overrides = parse_overrides(overrides)
        for key, value in overrides.items():
            _set_dotted(raw, key, value)
    return recipe_from_dict(raw)


def read_named_toml(
    name_or_path: str, kind: str, folder: str, builtins: list[str]
) -> tuple[dict, str]:
    """A TOML file, or the built-in ``cifarlab/<folder>/<name>.toml``: (parsed table, where).

    ``kind`` ("recipe", "ladder") words the one-line errors; shared by recipes and ladders.
    A name ending in ``.toml``, holding a path separator, or naming anything on disk is a
    file (``_read_user_file``); but a directory of a built-in's name (a run folder called
    ``fast94``, say) does not hide the built-in.
    """
    path = Path(name_or_path)
    if _names_a_file(path, str(name_or_path), builtins):
        text = _read_user_file(path, kind)
        where = str(path)
    else:
        res = resources.files("cifarlab") / folder / f"{name_or_path}.toml"
        if not res.is_file():
            raise RecipeError(
                f"{kind} {_short(name_or_path)}: no such built-in {kind} or file; "
                f"built-in: {', '.join(builtins)}"
            )
        text = res.read_text(encoding="utf-8")
        where = f"{kind} {name_or_path!r}"
    try:
        return tomllib.loads(text), where
    except ValueError as exc:  # TOMLDecodeError, or an integer of over 4,300 digits
        raise RecipeError(f"{where}: not valid TOML ({exc})") from None


def _names_a_file(path: Path, name: str, builtins: list[str]) -> bool:
    if path.suffix == ".toml" or "/" in name or os.sep in name:
        return True
    if not os.path.lexists(path):
        return False
    return not (os.path.isdir(path) and name in builtins)


def _read_user_file(path: Path, kind: str) -> str:
    """The text of a user's TOML file, or one RecipeError line saying what is wrong with it.

    It must be a regular file (a directory, FIFO, device or dangling link is named as such;
    a FIFO is never opened, so nothing blocks), at most MAX_FILE_BYTES (checked before it is
    read), readable, and UTF-8: a byte that is not is refused with its offset, not replaced.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            try:
                target = f" to {_short(os.readlink(path))}"
            except OSError:
                target = ""
            raise RecipeError(
                f"{path}: {kind} file is a symbolic link{target}, which does not exist"
            ) from None
        raise RecipeError(f"{path}: {kind} file not found") from None
    except (OSError, ValueError) as exc:
        raise RecipeError(f"{path}: cannot read the {kind} file ({_os_reason(exc)})") from None
    _check_regular(path, info, kind)
    _check_size(path, info.st_size, kind)
    # O_NONBLOCK: should the path become a FIFO between stat and open, open returns at once
    # (fstat below then refuses it); on a regular file the flag changes nothing.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise RecipeError(f"{path}: cannot read the {kind} file ({_os_reason(exc)})") from None
    try:
        with os.fdopen(fd, "rb") as f:
            _check_regular(path, os.fstat(f.fileno()), kind)  # what was opened, not the path
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise RecipeError(f"{path}: cannot read the {kind} file ({_os_reason(exc)})") from None
    _check_size(path, len(data), kind, grew=True)  # it may have grown since the stat
    bom = b"\xef\xbb\xbf"  # a UTF-8 byte-order mark, as some Windows editors write: UTF-8 still
    skip = len(bom) if data.startswith(bom) else 0
    try:
        return data[skip:].decode("utf-8")
    except UnicodeDecodeError as exc:
        at = exc.start + skip
        raise RecipeError(
            f"{path}: {kind} file is not UTF-8: byte 0x{data[at]:02x} at offset {at} is not "
            f"valid UTF-8 ({exc.reason}); save the file as UTF-8"
        ) from None


def _check_regular(path: Path, info: os.stat_result, kind: str) -> None:
    mode = info.st_mode
    if not stat.S_ISREG(mode):
        what = (
            "a directory"
            if stat.S_ISDIR(mode)
            else "a named pipe (FIFO)"
            if stat.S_ISFIFO(mode)
            else "a socket"
            if stat.S_ISSOCK(mode)
            else "a device"
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "not a regular file"
        )
        raise RecipeError(f"{path}: is {what}, not a {kind} file; give the path of a .toml file")


def _check_size(path: Path, size: int, kind: str, grew: bool = False) -> None:
    if size > MAX_FILE_BYTES:
        size_text = "grew past the limit" if grew else f"is {size:,} bytes, more than the limit"
        raise RecipeError(
            f"{path}: {kind} file {size_text} of {MAX_FILE_BYTES:,} bytes (1 MiB); "
            f"a {kind} is a few kilobytes of settings"
        )


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower() if isinstance(exc, PermissionError) else exc.strerror
    return str(exc) or type(exc).__name__


def _read_raw(name_or_path: str, seen: tuple[str, ...]) -> dict[str, Any]:
    if name_or_path in seen:
        raise RecipeError(f"recipe {name_or_path!r}: 'base' chain loops ({' -> '.join(seen)})")
    raw, _ = read_named_toml(name_or_path, "recipe", "recipes", builtin_recipes())
    path = Path(name_or_path)
    raw.setdefault("name", path.stem if path.suffix == ".toml" else name_or_path)
    return _resolve_base(raw, seen + (name_or_path,))


def _resolve_base(raw: dict[str, Any], seen: tuple[str, ...]) -> dict[str, Any]:
    base = raw.pop("base", None)
    if base is None:
        return raw
    if not isinstance(base, str):
        raise RecipeError(f"base: expected a recipe name or path, got {base!r}")
    merged = _read_raw(base, seen)
    merged.pop("description", None)
    _deep_update(merged, raw)
    return merged


def _deep_update(dst: dict[str, Any], src: dict[str, Any]) -> None:
    for key, value in src.items():
        if isinstance(value, dict) and isinstance(dst.get(key), dict) and key != "options":
            _deep_update(dst[key], value)
        elif isinstance(value, dict) and isinstance(dst.get(key), dict):
            dst[key] = {**dst[key], **value}
        else:
            dst[key] = value


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["optim.lr=1e-3", "model.name=seednet"]`` -> dict, values parsed as TOML."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise RecipeError(f"--set {item!r}: expected key=value, e.g. optim.lr=7e-4")
        out[key] = parse_value(text.strip())
    return out


def parse_value(text: str) -> Any:
    """A TOML value (``1e-3``, ``true``, ``[0.5, 0.5]``, ``"x"``), or a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except ValueError:  # TOMLDecodeError, or an integer of over 4,300 digits
        return text


def _set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = raw
    for part in parts[:-1]:
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise RecipeError(f"--set {key}: {part!r} is a value, not a section")
        node = nxt
    node[parts[-1]] = value


def recipe_from_dict(raw: dict[str, Any], *, stored: bool = False) -> Recipe:
    """Build and validate a Recipe; unknown keys and bad values raise RecipeError.

    ``stored=True`` is for a recipe read back from a run (its checkpoint or recipe.toml:
    evaluate, predict, export, resume). One written by an older cifarlab is first brought to
    today's fields (``migrate_stored``), and the limits on what a new run may ask for (run
    length, text size: ``validate``'s ``new_run``) are not applied, since that run exists.
    A user's recipe and ``--set`` (``load_recipe``) keep every check and every refusal.
    """
    if stored:
        raw = migrate_stored(raw)
    recipe = _build(Recipe, raw, prefix="")
    validate(recipe, new_run=not stored)
    return recipe


def _build(cls, raw: Any, prefix: str):
    if not isinstance(raw, dict):
        raise RecipeError(f"{prefix.rstrip('.') or 'recipe'}: expected a table, got {_short(raw)}")
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        where = prefix.rstrip(".") or "recipe"
        raise RecipeError(
            f"{where}: unknown key {_short(unknown[0])}; allowed: {', '.join(sorted(known))}"
        )
    kwargs = {}
    for f in fields(cls):
        if f.name not in raw:
            continue
        value, hint, name = raw[f.name], hints[f.name], prefix + f.name
        if dataclasses.is_dataclass(hint):
            kwargs[f.name] = _build(hint, value, name + ".")
        else:
            kwargs[f.name] = _coerce(value, hint, name)
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, name: str) -> Any:
    origin = getattr(hint, "__origin__", None)
    if get_origin(hint) in (Union, types.UnionType) and type(None) in get_args(hint):
        # ``X | None``: None comes only from a dict (TOML has no null: absent means None).
        if value is None:
            return None
        (inner,) = [a for a in get_args(hint) if a is not type(None)]
        return _coerce(value, inner, name)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise RecipeError(f"{name}: expected true or false, got {_short(value)}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise RecipeError(f"{name}: expected an integer, got {_short(value)}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)  # an integer too large for a float raises OverflowError
            except OverflowError:
                number = math.inf
            if not math.isfinite(number):
                raise RecipeError(f"{name}: expected a finite number, got {_short(value)}")
            return number
        raise RecipeError(f"{name}: expected a number, got {_short(value)}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise RecipeError(f"{name}: expected a string, got {_short(value)}")
    if origin is list:
        if not isinstance(value, list):
            raise RecipeError(f"{name}: expected a list of numbers, got {_short(value)}")
        return [_coerce(v, hint.__args__[0], f"{name}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise RecipeError(f"{name}: expected a table, got {_short(value)}")
        return dict(value)
    raise AssertionError(f"unhandled recipe type {hint} for {name}")  # a bug, not user input


def _check(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise RecipeError(f"{name}: {message}")


def _choice(value: str, name: str, choices: tuple[str, ...]) -> None:
    _check(
        value in choices,
        name,
        f"{_short(value)} is not allowed; choose one of {', '.join(choices)}",
    )


def _short(value: Any) -> str:
    """``repr(value)``, cut to a readable length: an error line must not carry a 50 MB value."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text):,} characters)"


# Optimiser options that models used to take, and the [optim] field that replaces each.
MOVED_MODEL_OPTIONS = {
    "bias_lr_scale": "bias_lr",
    "head_lr_scale": "head_lr",
    "bias_momentum": "bias_momentum",
}
# fastnet's defaults for them before they moved (commit bbdd471, 2026-11-29).
_OLD_FASTNET_OPTIONS = {"bias_lr_scale": 64.0}


def migrate_stored(raw: dict[str, Any]) -> dict[str, Any]:
    """A recipe stored by a run before the optimiser policy moved to ``[optim]``, in today's
    fields (a new dict; ``raw`` is not changed). A recipe of today comes back as it is.

    Until commit bbdd471 (2026-11-29) fastnet took the policy as model options: the biases'
    and the head's peak lr as multiples of ``optim.lr`` (``bias_lr_scale``, default 64;
    ``head_lr_scale``, default 1) and their momentum (``bias_momentum``, default: ``momentum``),
    and Muon always held its filters at norm sqrt(out_channels). train/optim.py now reads
    ``optim.bias_lr`` and ``optim.head_lr`` as lrs (a group's lr scale is bias_lr / lr), so
    ``bias_lr = lr x bias_lr_scale`` and ``head_lr = lr x head_lr_scale`` give the old groups'
    lrs, weight decays and momenta; ``optim.weight_norm = true`` keeps Muon's filters as they
    were. Such a recipe is told by what it lacks: ``optim.weight_norm``, a bool written into
    every resolved recipe since that commit (checkpoint and recipe.toml alike).
    """
    if not isinstance(raw, dict):
        return raw  # _build names the problem
    model, optim = raw.get("model"), raw.get("optim")
    if not isinstance(model, dict) or not isinstance(optim, dict):
        return raw
    options = model.get("options", {})
    if not isinstance(options, dict):
        return raw
    old_fastnet = model.get("name") == "fastnet" and "weight_norm" not in optim
    if not old_fastnet and not set(options) & set(MOVED_MODEL_OPTIONS):
        return raw
    raw = copy.deepcopy(raw)
    model, optim = raw["model"], raw["optim"]
    options = model["options"] = {
        **(_OLD_FASTNET_OPTIONS if old_fastnet else {}),
        **model.get("options", {}),
    }
    if old_fastnet and optim.get("name") == "muon":
        optim["weight_norm"] = True
    lr = optim.get("lr", OptimConfig.lr)
    for old, new in MOVED_MODEL_OPTIONS.items():
        value = options.get(old)
        if value is None or optim.get(new) is not None:
            continue  # absent; or set both ways, which validation refuses by name
        if not _is_number(value) or (old.endswith("_lr_scale") and not _is_number(lr)):
            continue  # left for validation to refuse by name
        optim[new] = lr * value if old.endswith("_lr_scale") else value
        del options[old]
    return raw


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_moved_options(r: Recipe) -> None:
    for old, new in MOVED_MODEL_OPTIONS.items():
        if old not in r.model.options:
            continue
        value = r.model.options[old]
        hint = ""
        if old.endswith("_lr_scale") and isinstance(value, (int, float)):
            hint = f" (here optim.lr x {old} = {r.optim.lr * value:g})"
        raise RecipeError(
            f"model.options.{old}: optimiser policy moved to the recipe; "
            f"set optim.{new} instead, in natural units{hint}"
        )


def validate(r: Recipe, new_run: bool = True) -> None:
    """Range checks that types alone cannot express.

    ``new_run`` adds the limits on what a new run may ask for (its length before any data is
    read, the size of its free text); a stored recipe (``recipe_from_dict(stored=True)``)
    skips them: its run was accepted when it started.
    """
    if new_run:
        for key, limit in MAX_TEXT.items():
            n = len(getattr(r, key))
            _check(
                n <= limit, key, f"{n:,} characters, more than the limit of {limit:,}; shorten it"
            )
    _check(
        0.0 <= r.data.val_fraction < 1.0,
        "data.val_fraction",
        f"must be in [0, 1), got {r.data.val_fraction}",
    )
    _check(len(r.data.mean) == 3, "data.mean", f"needs 3 values (R, G, B), got {len(r.data.mean)}")
    _check(len(r.data.std) == 3, "data.std", f"needs 3 values (R, G, B), got {len(r.data.std)}")
    _check(
        all(s > 0 for s in r.data.std), "data.std", f"must be positive, got {_short(r.data.std)}"
    )
    _check(r.data.split_seed >= 0, "data.split_seed", f"must be >= 0, got {r.data.split_seed}")
    # A shift of the whole image side leaves no image in the crop, and reflect padding of
    # that much is an error in torch (at the first step, after the data has loaded).
    _check(
        0 <= r.augment.translate < IMAGE_SIDE,
        "augment.translate",
        f"must be in [0, {IMAGE_SIDE - 1}] pixels (the images are {IMAGE_SIDE} wide), "
        f"got {r.augment.translate}",
    )
    _choice(r.augment.pad_mode, "augment.pad_mode", ("reflect", "zeros"))
    _check(
        r.augment.flip or not r.augment.flip_alternate,
        "augment.flip_alternate",
        "needs augment.flip = true (it alternates that flip): set it, or drop flip_alternate",
    )
    for key in ("brightness", "contrast", "saturation"):
        v = getattr(r.augment, key)
        _check(0.0 <= v <= 1.0, f"augment.{key}", f"must be in [0, 1], got {v}")
    _check(
        0 <= r.augment.cutout <= IMAGE_SIDE,
        "augment.cutout",
        f"must be in [0, {IMAGE_SIDE}] pixels (the images are {IMAGE_SIDE} wide), "
        f"got {r.augment.cutout}",
    )
    _check(
        0.0 <= r.augment.random_erasing <= 1.0,
        "augment.random_erasing",
        f"must be a probability in [0, 1], got {r.augment.random_erasing}",
    )
    for key in ("mixup", "cutmix"):
        v = getattr(r.augment, key)
        _check(
            v == 0.0 or MIN_MIX_ALPHA <= v <= MAX_MIX_ALPHA,
            f"augment.{key}",
            f"must be 0 (off) or a Beta alpha in [{MIN_MIX_ALPHA}, {MAX_MIX_ALPHA:g}], got {v}",
        )
    _choice(r.optim.name, "optim.name", OPTIMIZERS)
    _check(r.optim.lr > 0, "optim.lr", f"must be > 0, got {r.optim.lr}")
    _check(
        r.optim.weight_decay >= 0, "optim.weight_decay", f"must be >= 0, got {r.optim.weight_decay}"
    )
    _check(
        0 <= r.optim.momentum < 1, "optim.momentum", f"must be in [0, 1), got {r.optim.momentum}"
    )
    _check(
        len(r.optim.betas) == 2 and all(0 <= b < 1 for b in r.optim.betas),
        "optim.betas",
        f"needs two values in [0, 1), got {r.optim.betas}",
    )
    for key in ("bias_lr", "head_lr"):
        value = getattr(r.optim, key)
        _check(value is None or value > 0, f"optim.{key}", f"must be > 0, got {value}")
    _check(
        r.optim.bias_momentum is None or 0 <= r.optim.bias_momentum < 1,
        "optim.bias_momentum",
        f"must be in [0, 1), got {r.optim.bias_momentum}",
    )
    _check_moved_options(r)
    _choice(r.schedule.name, "schedule.name", SCHEDULES)
    _check(
        0 <= r.schedule.warmup < 1, "schedule.warmup", f"must be in [0, 1), got {r.schedule.warmup}"
    )
    _check(
        r.schedule.final_lr >= 0, "schedule.final_lr", f"must be >= 0, got {r.schedule.final_lr}"
    )
    marks = r.schedule.milestones
    _check(
        all(0 < m < 1 for m in marks)
        and all(a < b for a, b in zip(marks, marks[1:], strict=False)),
        "schedule.milestones",
        f"must be increasing fractions of training in (0, 1), got {_short(marks)}",
    )
    _check(r.schedule.gamma > 0, "schedule.gamma", f"must be > 0, got {r.schedule.gamma}")
    # A new run trains: 0 epochs would test an untrained model and call it a run. A stored
    # recipe may say 0 (accepted before this check), so its run still opens.
    _check(
        r.train.epochs > 0 or (not new_run and r.train.epochs == 0),
        "train.epochs",
        f"must be > 0, got {r.train.epochs}",
    )
    _check(r.train.batch_size > 0, "train.batch_size", f"must be > 0, got {r.train.batch_size}")
    _check(r.train.max_steps > 0, "train.max_steps", f"must be > 0, got {r.train.max_steps}")
    if new_run:
        _check(
            r.train.epochs <= MAX_EPOCHS,
            "train.epochs",
            f"{r.train.epochs:g} is more than {MAX_EPOCHS:,} epochs, the most a run may take "
            f"(the longest built-in recipe takes 200)",
        )
        # Before any data is read: the run on CIFAR-10's training split, after data.val_fraction
        # (split.py's rounding). check_run_length repeats this on the real split.
        held_out = math.floor(CIFAR10_TRAIN_IMAGES * r.data.val_fraction + 0.5)
        _check_steps(r, CIFAR10_TRAIN_IMAGES - held_out, "CIFAR-10's")
    _check(r.train.eval_points > 0, "train.eval_points", f"must be > 0, got {r.train.eval_points}")
    _check(
        0 <= r.train.label_smoothing < 1,
        "train.label_smoothing",
        f"must be in [0, 1), got {r.train.label_smoothing}",
    )
    _check(
        r.train.checkpoint_every >= 0,
        "train.checkpoint_every",
        f"must be >= 0, got {r.train.checkpoint_every}",
    )
    _check(r.train.grad_clip >= 0, "train.grad_clip", f"must be >= 0, got {r.train.grad_clip}")
    _check(
        0.0 <= r.train.ema < 1.0,
        "train.ema",
        f"must be a decay in [0, 1) (0 = off; e.g. 0.999), got {r.train.ema}",
    )
    _check_resolutions(r.train)
    _check(
        not r.train.keep_best or r.data.val_fraction > 0,
        "train.keep_best",
        "chooses the best checkpoint by validation accuracy, and this recipe holds out no "
        "validation split (data.val_fraction = 0); set data.val_fraction (e.g. 0.1), or drop "
        "keep_best",
    )
    _choice(r.eval.tta, "eval.tta", TTA_MODES)
    _check(r.eval.batch_size > 0, "eval.batch_size", f"must be > 0, got {r.eval.batch_size}")
    _choice(r.system.device, "system.device", DEVICES)
    _choice(r.system.precision, "system.precision", PRECISIONS)
    _check(
        0 <= r.system.threads <= MAX_THREADS,
        "system.threads",
        f"must be in [0, {MAX_THREADS}], got {r.system.threads}",
    )
    _check(r.seed >= 0, "seed", f"must be >= 0, got {r.seed}")
    from cifarlab.models import list_models

    _choice(r.model.name, "model.name", tuple(list_models()))


def run_steps(recipe: Recipe, n_train: int) -> tuple[int, int]:
    """(optimizer steps per epoch, steps in the run) on a training split of ``n_train``
    images: partial last batches kept, as DataLoader's default (train/loop's rule)."""
    per_epoch = max(math.ceil(n_train / recipe.train.batch_size), 1)
    return per_epoch, int(round(recipe.train.epochs * per_epoch))


def _check_resolutions(t: TrainConfig) -> None:
    sizes, marks = t.resolutions, t.resolution_milestones
    _check(
        all(MIN_RESOLUTION <= s <= IMAGE_SIDE for s in sizes),
        "train.resolutions",
        f"training image sizes must be {MIN_RESOLUTION} to {IMAGE_SIDE} pixels "
        f"(CIFAR-10's own), got {_short(sizes)}",
    )
    _check(
        len(marks) == max(len(sizes) - 1, 0),
        "train.resolution_milestones",
        f"needs one fraction of training fewer than train.resolutions ({len(sizes)} sizes), "
        f"got {_short(marks)}",
    )
    _check(
        all(0 < m < 1 for m in marks)
        and all(a < b for a, b in zip(marks, marks[1:], strict=False)),
        "train.resolution_milestones",
        f"must be increasing fractions of training in (0, 1), got {_short(marks)}",
    )


def check_run_length(recipe: Recipe, n_train: int) -> None:
    """Refuse, once the training split is known, a new run that would not be what its recipe
    says: a batch larger than the split (each step would hold the whole split, and the step
    count would mislead), or more optimizer steps than ``train.max_steps``.

    The loop calls it once the data is loaded, before the model is built; ``n_train`` is the
    number of training images after the validation split.
    """
    batch = recipe.train.batch_size
    _check(
        batch <= n_train,
        "train.batch_size",
        f"{batch:,} images per step is more than the training split holds ({n_train:,}): "
        f"every step would take the whole split; set train.batch_size to {n_train} or less, "
        f"or hold out fewer images (data.val_fraction)",
    )
    _check_steps(recipe, n_train, "the")
    per_epoch, total = run_steps(recipe, n_train)
    _check(
        total >= 1,
        "train.epochs",
        f"{recipe.train.epochs:g} epochs at {per_epoch:,} steps per epoch is no optimizer step; "
        f"one step is {1 / per_epoch:.3g} epochs",
    )


def _check_steps(recipe: Recipe, n_train: int, whose: str) -> None:
    _, total = run_steps(recipe, n_train)
    limit = recipe.train.max_steps
    _check(
        total <= limit,
        "train.epochs",
        f"{recipe.train.epochs:g} epochs at batch {recipe.train.batch_size:,} on {whose} "
        f"{n_train:,}-image training split is {total:,} optimizer steps, more than "
        f"train.max_steps = {limit:,}; to run that long, --set train.max_steps={total}",
    )


# --------------------------------------------------------------------------- writing


def dumps_toml(raw: dict[str, Any]) -> str:
    """A small TOML writer for recipe dicts (scalars, lists, nested tables).

    None is left out: TOML has no null, and an absent optional field reads back as None.
    """
    lines: list[str] = []
    tables: list[tuple[str, dict]] = []
    for key, value in raw.items():
        if value is None:
            continue
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    for name, table in tables:
        _emit_table(lines, name, table)
    return "\n".join(lines) + "\n"


def _emit_table(lines: list[str], name: str, table: dict[str, Any]) -> None:
    lines.append("")
    lines.append(f"[{name}]")
    subtables = []
    for key, value in table.items():
        if value is None:
            continue
        if isinstance(value, dict):
            subtables.append((f"{name}.{key}", value))
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    for sub_name, sub in subtables:
        _emit_table(lines, sub_name, sub)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {value!r} as TOML")
