"""The report's ResNet question: the seed report ends on "ResNets have demonstrated superior
performance over traditional ConvNets, particularly as the depth of the network increases".
For each ablation study whose steps train nets of the CIFAR ResNet family (``resnet20``,
``resnet56``; with ``model.options.plain`` true or false, as the ``depth`` ladder does), this
section answers it from the study's own runs: each net's final training accuracy and loss
(He et al.'s figure 6 plots training error: the degradation problem is one of optimisation),
test accuracy and training time, and three comparisons, each with Welch's 95% interval and a
plain verdict: plain nets as depth grows (does the degradation problem appear?), residual nets
as depth grows, and shortcuts against none at the same depth. All nets of one study train on
one schedule, so the comparisons are in equal epochs; the training times say what each costs."""

from __future__ import annotations

import re
from dataclasses import dataclass

from cifarlab.report.document import Block, Heading, Paragraph, Section, Table
from cifarlab.report.formatting import duration, interval
from cifarlab.report.inputs import StudyInput
from cifarlab.studies.stats import mean, sample_std, welch_difference
from cifarlab.studies.summary import LEVEL

FAMILY = re.compile(r"resnet(\d+)")  # the CIFAR family's names carry their depth (6n + 2)
CIFAR_DEPTHS = {20, 56}  # the family's nets in cifarlab.models.resnet (resnet18 is another family)

COLUMNS = [  # (heading, right-aligned)
    ("step", False),
    ("net", False),
    ("n", True),
    ("final train accuracy (%)", True),
    ("final train loss", True),
    ("test accuracy (%)", True),
    ("training time (mean)", True),
]


@dataclass
class Net:
    """One step of a study that trains a net of the CIFAR ResNet family."""

    step: str
    layers: int
    residual: bool
    test: list[float]  # per seed, %
    train_accuracy: list[float]  # per seed, final, %
    train_loss: list[float]  # per seed, final
    train_time: list[float]  # per seed, s
    epochs: float | None  # train.epochs of its recipe (None: not recorded)

    @property
    def label(self) -> str:
        return f"{'ResNet' if self.residual else 'plain'}-{self.layers}"


def resnet_section(studies: list[StudyInput]) -> Section | None:
    """The answer per ablation study with at least two nets of the family; None without one."""
    blocks: list[Block] = []
    for study in (s for s in studies if s.kind == "ablation"):
        nets = _nets(study)
        comparisons = _comparisons(nets)
        if not comparisons:
            continue
        blocks.append(Heading(study.name, level=3))
        blocks.append(
            Paragraph(
                f"{study.name}: {len(nets)} nets of the CIFAR ResNet family (16/32/64 filters, "
                f"6n + 2 layers), {_schedule(nets)}. Final training accuracy and loss are the last evaluation point of each "
                "run's history (augmented images, as the run printed it); differences are the "
                "second net's mean minus the first's, with Welch's 95% interval."
            )
        )
        blocks.append(_table(study.name, nets))
        blocks += [Paragraph(text) for text in comparisons]
    if not blocks:
        return None
    return Section("resnet-question", "The ResNet question: depth and shortcuts", blocks)


def _nets(study: StudyInput) -> list[Net]:
    """The study's finished steps that train a family net, in the study's order."""
    rows = {r["step"]: r for r in study.rows()}
    nets = []
    for step in study.step_names():
        runs = study.runs.get(step) or []
        if step not in rows or not runs or runs[0].recipe is None:
            continue
        model = runs[0].recipe.get("model") or {}
        m = FAMILY.fullmatch(str(model.get("name", "")))
        if not m or int(m.group(1)) not in CIFAR_DEPTHS:
            continue
        row = rows[step]
        nets.append(
            Net(
                step=step,
                layers=int(m.group(1)),
                residual=not (model.get("options") or {}).get("plain", False),
                test=list(row["values"]),
                train_accuracy=list((row.get("train_accuracy") or {}).get("values") or []),
                train_loss=list((row.get("train_loss") or {}).get("values") or []),
                train_time=[
                    float(r.metrics["train_time_s"])
                    for r in runs
                    if r.metrics and r.metrics.get("train_time_s") is not None
                ],
                epochs=(runs[0].recipe.get("train") or {}).get("epochs"),
            )
        )
    return nets


def _table(name: str, nets: list[Net]) -> Table:
    rows = [
        [
            n.step,
            n.label,
            str(len(n.test)),
            _mean_std(n.train_accuracy, 2),
            _mean_std(n.train_loss, 3),
            _mean_std(n.test, 2),
            duration(mean(n.train_time)) if n.train_time else "—",
        ]
        for n in nets
    ]
    return Table(
        [c for c, _ in COLUMNS],
        rows,
        caption=f"The ResNet question: {name}",
        numeric=[n for _, n in COLUMNS],
    )


def _comparisons(nets: list[Net]) -> list[str]:
    """One sentence per question the study's nets can answer: depth among plain nets, depth
    among residual nets, and shortcuts at each depth both kinds were trained at."""
    out = []
    for residual in (False, True):
        family = sorted((n for n in nets if n.residual == residual), key=lambda n: n.layers)
        for shallow, deep in zip(family, family[1:], strict=False):
            if shallow.layers != deep.layers:
                out.append(_depth_sentence(shallow, deep))
    for plain in (n for n in nets if not n.residual):
        twin = next((n for n in nets if n.residual and n.layers == plain.layers), None)
        if twin is not None:
            out.append(_shortcut_sentence(plain, twin))
    return out


def _depth_sentence(shallow: Net, deep: Net) -> str:
    kind = "residual" if deep.residual else "plain"
    sign, facts = _difference(shallow, deep)
    head = f"As depth grows, {kind} nets ({shallow.label} → {deep.label}): {facts}. "
    if sign is None:
        return head + "Too few seeds for an interval: no verdict."
    if sign == 0:
        return head + (
            f"The training accuracies differ within seed noise: at this schedule and with "
            f"these seeds the study cannot say whether a deeper {kind} net trains worse or better."
        )
    if not deep.residual:
        return head + (
            "The deeper plain net trains worse, beyond seed noise: the degradation problem "
            "appears at this schedule."
            if sign < 0
            else "The deeper plain net trains better, beyond seed noise: no degradation "
            "problem at this schedule."
        )
    return head + (
        "The deeper residual net trains better, beyond seed noise: depth helps a residual net here."
        if sign > 0
        else "The deeper residual net trains worse, beyond seed noise: at this schedule depth "
        "does not help even with shortcuts (a short schedule may not let the deeper net catch up)."
    )


def _shortcut_sentence(plain: Net, residual: Net) -> str:
    sign, facts = _difference(plain, residual)
    head = f"Shortcuts at {plain.layers} layers ({plain.label} → {residual.label}): {facts}. "
    if sign is None:
        return head + "Too few seeds for an interval: no verdict."
    if sign == 0:
        return head + "The training accuracies differ within seed noise."
    return head + (
        "With shortcuts the net trains better, beyond seed noise."
        if sign > 0
        else "With shortcuts the net trains worse, beyond seed noise."
    )


def _difference(a: Net, b: Net) -> tuple[int | None, str]:
    """The sign of b's training-accuracy difference from a's where its interval excludes 0
    (+1, -1; 0 within noise; None without an interval, e.g. one seed or no training values),
    and the differences of training accuracy, training loss, test accuracy and time as text."""
    parts = []
    sign: int | None = None
    for what, x, y, digits in (
        ("final training accuracy", a.train_accuracy, b.train_accuracy, 2),
        ("final training loss", a.train_loss, b.train_loss, 3),
        ("test accuracy", a.test, b.test, 2),
    ):
        if not x or not y:
            parts.append(f"{what} not recorded")
            continue
        w = welch_difference(x, y, LEVEL)
        text = f"{what} {mean(x):.{digits}f} → {mean(y):.{digits}f} (Δ {w.diff:+.{digits}f}"
        if w.ci is not None:
            lo, hi = w.ci
            text += f", 95% CI {interval([lo, hi], signed=True, digits=digits)}"
            if what == "final training accuracy":
                sign = 1 if lo > 0 else -1 if hi < 0 else 0
        parts.append(text + ")")
    if a.train_time and b.train_time and mean(a.train_time) > 0:
        parts.append(f"{mean(b.train_time) / mean(a.train_time):.2f}× the training time")
    return sign, "; ".join(parts)


def _schedule(nets: list[Net]) -> str:
    """Whether the nets trained for the same number of epochs, as the comparisons assume."""
    epochs = {n.epochs for n in nets}
    if len(epochs) == 1 and None not in epochs:
        return f"all trained for {float(next(iter(epochs))):g} epochs, so each comparison below is in equal epochs"
    per_net = ", ".join(
        f"{n.label} {'?' if n.epochs is None else f'{float(n.epochs):g}'}" for n in nets
    )
    return f"NOT all trained for the same number of epochs ({per_net}): the comparisons below are not in equal epochs"


def _mean_std(values: list[float], digits: int) -> str:
    if not values:
        return "—"
    if len(values) < 2:
        return f"{values[0]:.{digits}f}"
    return f"{mean(values):.{digits}f} ± {sample_std(values):.{digits}f}"
