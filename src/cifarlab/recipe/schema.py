"""The recipe's schema: its sections as typed dataclasses, each field with its unit and
default, and the choices its string fields take (checked by cifarlab.recipe.validation)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from cifarlab.recipe.toml_writer import dumps_toml

OPTIMIZERS = ("sgd", "adam", "adamw", "muon")
SCHEDULES = ("constant", "step", "cosine", "linear")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda", "mps")
TTA_MODES = ("none", "flip", "flip-translate")
DATASETS = ("cifar10", "cifar100", "cifar100-coarse", "folder")  # cifarlab.data.datasets
NORMALIZE = ("recipe", "train")  # data.normalize

# train.max_steps' default, a typo's guard far from any real recipe. The longest built-in run, resnet18 (200 epochs of batch 128), takes 70,400 optimizer steps
# on its 45,000-image split and at most 200 x 391 = 78,200 on all 50,000 images; the default
# cap is ~13x that (a batch-128 run of 2,560 epochs). A longer run says so with
# --set train.max_steps=N.
DEFAULT_MAX_STEPS = 1_000_000


@dataclass
class DataConfig:
    # One of DATASETS: CIFAR-10, CIFAR-100 (fine or coarse labels), or a user's image folders.
    dataset: str = "cifar10"
    source: str = (
        "auto"  # "auto" (the full dataset when found, else its bundled sample), "sample", or a path
    )
    val_fraction: float = 0.2  # share of the training set held out for validation (report: 80/20)
    split_seed: int = 42  # fixed across seeds, as the report's train_test_split(random_state=42)
    mean: list[float] = field(
        default_factory=lambda: [0.5, 0.5, 0.5]
    )  # per channel, on the [0, 1] scale
    std: list[float] = field(
        default_factory=lambda: [0.5, 0.5, 0.5]
    )  # per channel, on the [0, 1] scale
    # "recipe": normalise with data.mean and data.std as written (the report's 0.5/0.5);
    # "train": with the per-channel mean and std of the training split (after the
    # validation split is held out; never the test set), computed and recorded in the run
    # (its checkpoint's "normalization"); data.mean and data.std are then ignored, and may
    # stay as they are in the same recipe. Evaluation uses the recorded numbers.
    normalize: str = "recipe"
    image_size: int = 32  # folder datasets: pixels per side each image is brought to
    # folder datasets with no test/ folder: share of each class held out as the test set
    # (seeded by data.split_seed, before the validation split)
    test_fraction: float = 0.2

    def dataset_spec(self) -> Any:
        """The dataset this section names, as the data layer takes it (less its location)."""
        from cifarlab.data.datasets import DatasetSpec

        return DatasetSpec(self.dataset, self.image_size, self.split_seed, self.test_fraction)


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
