"""Validation of a Recipe: the range checks that types alone cannot express, the limits on
what a new run may ask for, and the run-length checks once the training split is known."""

from __future__ import annotations

import math

from cifarlab.errors import RecipeError
from cifarlab.recipe.checks import check, choice, short
from cifarlab.recipe.migrate import MOVED_MODEL_OPTIONS
from cifarlab.recipe.schema import (
    DATASETS,
    DEVICES,
    NORMALIZE,
    OPTIMIZERS,
    PRECISIONS,
    SCHEDULES,
    TTA_MODES,
    Recipe,
    TrainConfig,
)

# Limits on what a new run may ask for: each a typo's guard, far from any real recipe.
# Epochs beyond this are refused outright, max_steps or not: the longest built-in has 200,
# and at one step per epoch (a batch of the whole split) 1e6 epochs is the default cap.
MAX_EPOCHS = 1_000_000
# The up-front run-length check, before any data is read, assumes the dataset's training
# set: CIFAR-10's and CIFAR-100's (fine or coarse) both hold 50,000 images; a folder
# dataset's size is known only once it is read, so check_run_length alone checks it.
CIFAR10_TRAIN_IMAGES = 50_000
TRAIN_IMAGES = {"cifar10": 50_000, "cifar100": 50_000, "cifar100-coarse": 50_000}
DATASET_NAMES = {
    "cifar10": "CIFAR-10's",
    "cifar100": "CIFAR-100's",
    "cifar100-coarse": "CIFAR-100's",
}
IMAGE_SIDE = 32  # pixels: CIFAR's images are 32x32 (data/readers.IMAGE_SHAPE)
MAX_IMAGE_SIZE = 512  # data.image_size: a folder dataset is held in memory, decoded
MIN_RESOLUTION = 8  # train.resolutions; a size the model cannot take is refused when it is built
# Free text is copied into recipe.toml, every checkpoint, metrics and reports. The longest
# built-in description is 162 characters; a name also becomes directory names and plot
# titles (most file systems allow 255 bytes per path component).
MAX_TEXT = {"name": 200, "description": 2_000}
MAX_THREADS = 1024  # system.threads: more is a typo, not a machine
# augment.mixup / augment.cutmix: Beta(a, a) alphas. Below 0.01 the gamma draws behind the Beta
# sampler underflow (measured: at a = 0.001 the weights' variance is 0.19, not 0.25); above 100
# the weight is 0.5 +- 0.035, mixup of every pair by halves; timm's defaults are 0.8 and 1.0.
MIN_MIX_ALPHA, MAX_MIX_ALPHA = 0.01, 100.0


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
            check(
                n <= limit, key, f"{n:,} characters, more than the limit of {limit:,}; shorten it"
            )
    check(
        0.0 <= r.data.val_fraction < 1.0,
        "data.val_fraction",
        f"must be in [0, 1), got {r.data.val_fraction}",
    )
    check(len(r.data.mean) == 3, "data.mean", f"needs 3 values (R, G, B), got {len(r.data.mean)}")
    check(len(r.data.std) == 3, "data.std", f"needs 3 values (R, G, B), got {len(r.data.std)}")
    check(all(s > 0 for s in r.data.std), "data.std", f"must be positive, got {short(r.data.std)}")
    check(r.data.split_seed >= 0, "data.split_seed", f"must be >= 0, got {r.data.split_seed}")
    choice(r.data.dataset, "data.dataset", DATASETS)
    choice(r.data.normalize, "data.normalize", NORMALIZE)
    check(
        MIN_RESOLUTION <= r.data.image_size <= MAX_IMAGE_SIZE,
        "data.image_size",
        f"must be in [{MIN_RESOLUTION}, {MAX_IMAGE_SIZE}] pixels, got {r.data.image_size}",
    )
    check(
        r.data.dataset == "folder" or r.data.image_size == IMAGE_SIDE,
        "data.image_size",
        f'CIFAR images are {IMAGE_SIDE}x{IMAGE_SIDE}; set it for data.dataset = "folder" only',
    )
    # A folder dataset has no bundled sample; its location is data.source or --data-dir
    # ("auto" with no --data-dir is refused when the data is loaded: data.tensors).
    check(
        r.data.dataset != "folder" or r.data.source != "sample",
        "data.source",
        'data.dataset = "folder" has no bundled sample; set data.source to the folder\'s path '
        "(or pass --data-dir)",
    )
    check(
        0.0 < r.data.test_fraction < 1.0,
        "data.test_fraction",
        f"must be in (0, 1), got {r.data.test_fraction}",
    )
    # A shift of the whole image side leaves no image in the crop, and reflect padding of
    # that much is an error in torch (at the first step, after the data has loaded).
    side = r.data.image_size  # 32 for CIFAR (checked above); a folder's own size
    check(
        0 <= r.augment.translate < side,
        "augment.translate",
        f"must be in [0, {side - 1}] pixels (the images are {side} wide, data.image_size), "
        f"got {r.augment.translate}",
    )
    choice(r.augment.pad_mode, "augment.pad_mode", ("reflect", "zeros"))
    check(
        r.augment.flip or not r.augment.flip_alternate,
        "augment.flip_alternate",
        "needs augment.flip = true (it alternates that flip): set it, or drop flip_alternate",
    )
    for key in ("brightness", "contrast", "saturation"):
        v = getattr(r.augment, key)
        check(0.0 <= v <= 1.0, f"augment.{key}", f"must be in [0, 1], got {v}")
    check(
        0 <= r.augment.cutout <= side,
        "augment.cutout",
        f"must be in [0, {side}] pixels (the images are {side} wide, data.image_size), "
        f"got {r.augment.cutout}",
    )
    check(
        0.0 <= r.augment.random_erasing <= 1.0,
        "augment.random_erasing",
        f"must be a probability in [0, 1], got {r.augment.random_erasing}",
    )
    for key in ("mixup", "cutmix"):
        v = getattr(r.augment, key)
        check(
            v == 0.0 or MIN_MIX_ALPHA <= v <= MAX_MIX_ALPHA,
            f"augment.{key}",
            f"must be 0 (off) or a Beta alpha in [{MIN_MIX_ALPHA}, {MAX_MIX_ALPHA:g}], got {v}",
        )
    choice(r.optim.name, "optim.name", OPTIMIZERS)
    check(r.optim.lr > 0, "optim.lr", f"must be > 0, got {r.optim.lr}")
    check(
        r.optim.weight_decay >= 0, "optim.weight_decay", f"must be >= 0, got {r.optim.weight_decay}"
    )
    check(0 <= r.optim.momentum < 1, "optim.momentum", f"must be in [0, 1), got {r.optim.momentum}")
    check(
        len(r.optim.betas) == 2 and all(0 <= b < 1 for b in r.optim.betas),
        "optim.betas",
        f"needs two values in [0, 1), got {r.optim.betas}",
    )
    for key in ("bias_lr", "head_lr"):
        value = getattr(r.optim, key)
        check(value is None or value > 0, f"optim.{key}", f"must be > 0, got {value}")
    check(
        r.optim.bias_momentum is None or 0 <= r.optim.bias_momentum < 1,
        "optim.bias_momentum",
        f"must be in [0, 1), got {r.optim.bias_momentum}",
    )
    _check_moved_options(r)
    choice(r.schedule.name, "schedule.name", SCHEDULES)
    check(
        0 <= r.schedule.warmup < 1, "schedule.warmup", f"must be in [0, 1), got {r.schedule.warmup}"
    )
    check(r.schedule.final_lr >= 0, "schedule.final_lr", f"must be >= 0, got {r.schedule.final_lr}")
    marks = r.schedule.milestones
    check(
        all(0 < m < 1 for m in marks)
        and all(a < b for a, b in zip(marks, marks[1:], strict=False)),
        "schedule.milestones",
        f"must be increasing fractions of training in (0, 1), got {short(marks)}",
    )
    check(r.schedule.gamma > 0, "schedule.gamma", f"must be > 0, got {r.schedule.gamma}")
    # A new run trains: 0 epochs would test an untrained model and call it a run. A stored
    # recipe may say 0 (accepted before this check), so its run still opens.
    check(
        r.train.epochs > 0 or (not new_run and r.train.epochs == 0),
        "train.epochs",
        f"must be > 0, got {r.train.epochs}",
    )
    check(r.train.batch_size > 0, "train.batch_size", f"must be > 0, got {r.train.batch_size}")
    check(r.train.max_steps > 0, "train.max_steps", f"must be > 0, got {r.train.max_steps}")
    if new_run:
        check(
            r.train.epochs <= MAX_EPOCHS,
            "train.epochs",
            f"{r.train.epochs:g} is more than {MAX_EPOCHS:,} epochs, the most a run may take "
            f"(the longest built-in recipe takes 200)",
        )
        # Before any data is read: the run on the dataset's full training split, after
        # data.val_fraction (split.py's rounding); check_run_length repeats this on the real
        # split, and is the only check for a folder dataset (its size is unknown until read).
        n_images = TRAIN_IMAGES.get(r.data.dataset)
        if n_images is not None:
            held_out = math.floor(n_images * r.data.val_fraction + 0.5)
            _check_steps(r, n_images - held_out, DATASET_NAMES[r.data.dataset])
    check(r.train.eval_points > 0, "train.eval_points", f"must be > 0, got {r.train.eval_points}")
    check(
        0 <= r.train.label_smoothing < 1,
        "train.label_smoothing",
        f"must be in [0, 1), got {r.train.label_smoothing}",
    )
    check(
        r.train.checkpoint_every >= 0,
        "train.checkpoint_every",
        f"must be >= 0, got {r.train.checkpoint_every}",
    )
    check(r.train.grad_clip >= 0, "train.grad_clip", f"must be >= 0, got {r.train.grad_clip}")
    check(
        0.0 <= r.train.ema < 1.0,
        "train.ema",
        f"must be a decay in [0, 1) (0 = off; e.g. 0.999), got {r.train.ema}",
    )
    _check_resolutions(r.train, r.data.image_size)
    check(
        not r.train.keep_best or r.data.val_fraction > 0,
        "train.keep_best",
        "chooses the best checkpoint by validation accuracy, and this recipe holds out no "
        "validation split (data.val_fraction = 0); set data.val_fraction (e.g. 0.1), or drop "
        "keep_best",
    )
    choice(r.eval.tta, "eval.tta", TTA_MODES)
    check(r.eval.batch_size > 0, "eval.batch_size", f"must be > 0, got {r.eval.batch_size}")
    choice(r.system.device, "system.device", DEVICES)
    choice(r.system.precision, "system.precision", PRECISIONS)
    check(
        0 <= r.system.threads <= MAX_THREADS,
        "system.threads",
        f"must be in [0, {MAX_THREADS}], got {r.system.threads}",
    )
    check(r.seed >= 0, "seed", f"must be >= 0, got {r.seed}")
    from cifarlab.models import list_models

    choice(r.model.name, "model.name", tuple(list_models()))


def run_steps(recipe: Recipe, n_train: int) -> tuple[int, int]:
    """(optimizer steps per epoch, steps in the run) on a training split of ``n_train``
    images: partial last batches kept, as DataLoader's default (train/loop's rule)."""
    per_epoch = max(math.ceil(n_train / recipe.train.batch_size), 1)
    return per_epoch, int(round(recipe.train.epochs * per_epoch))


def _check_resolutions(t: TrainConfig, side: int = IMAGE_SIDE) -> None:
    sizes, marks = t.resolutions, t.resolution_milestones
    check(
        all(MIN_RESOLUTION <= s <= side for s in sizes),
        "train.resolutions",
        f"training image sizes must be {MIN_RESOLUTION} to {side} pixels "
        f"(the images' own, data.image_size), got {short(sizes)}",
    )
    check(
        len(marks) == max(len(sizes) - 1, 0),
        "train.resolution_milestones",
        f"needs one fraction of training fewer than train.resolutions ({len(sizes)} sizes), "
        f"got {short(marks)}",
    )
    check(
        all(0 < m < 1 for m in marks)
        and all(a < b for a, b in zip(marks, marks[1:], strict=False)),
        "train.resolution_milestones",
        f"must be increasing fractions of training in (0, 1), got {short(marks)}",
    )


def check_run_length(recipe: Recipe, n_train: int) -> None:
    """Refuse, once the training split is known, a new run that would not be what its recipe
    says: a batch larger than the split (each step would hold the whole split, and the step
    count would mislead), or more optimizer steps than ``train.max_steps``.

    The loop calls it once the data is loaded, before the model is built; ``n_train`` is the
    number of training images after the validation split.
    """
    batch = recipe.train.batch_size
    check(
        batch <= n_train,
        "train.batch_size",
        f"{batch:,} images per step is more than the training split holds ({n_train:,}): "
        f"every step would take the whole split; set train.batch_size to {n_train} or less, "
        f"or hold out fewer images (data.val_fraction)",
    )
    _check_steps(recipe, n_train, "the")
    per_epoch, total = run_steps(recipe, n_train)
    check(
        total >= 1,
        "train.epochs",
        f"{recipe.train.epochs:g} epochs at {per_epoch:,} steps per epoch is no optimizer step; "
        f"one step is {1 / per_epoch:.3g} epochs",
    )


def _check_steps(recipe: Recipe, n_train: int, whose: str) -> None:
    _, total = run_steps(recipe, n_train)
    limit = recipe.train.max_steps
    check(
        total <= limit,
        "train.epochs",
        f"{recipe.train.epochs:g} epochs at batch {recipe.train.batch_size:,} on {whose} "
        f"{n_train:,}-image training split is {total:,} optimizer steps, more than "
        f"train.max_steps = {limit:,}; to run that long, --set train.max_steps={total}",
    )
