"""Per-step cost of the training loop, interleaved in one process (ratios, not seconds).

Two comparisons, each on the full data with a recipe's real state (``train.context.build``):

- ``--compare host-reads``: today's ``train_step`` (running sums and the non-finite check on
  the device, no host read) against an old-style step that reads the loss (``.item()``) and
  the correct count (``int()``) back every step, as the loop did before issue 13;
- ``--compare layout``: ``train_step`` with the model and batches in NCHW against
  channels_last (``system.channels_last``).

Rounds alternate the order; run on an idle machine and write the load beside the figures.

    python benchmarks/bench_step.py --compare layout --recipe seed-improved --data-dir ../shared/cifar10
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch.nn.functional as F

from cifarlab import rundir
from cifarlab.data.augment import augment_batch
from cifarlab.data.batches import normalize, step_generator, to_float
from cifarlab.recipe import load_recipe
from cifarlab.train import context, loop
from cifarlab.train.distributed import SINGLE
from cifarlab.train.optim import lr_at, set_lr
from cifarlab.train.start import FRESH, StartPlan


def host_read_step(state, ctx) -> None:
    """The pre-issue-13 step: the same work, plus two host reads per step."""
    recipe, data, step = ctx.recipe, ctx.data, state.step
    epoch, i = divmod(step, ctx.per_epoch)
    batch = recipe.train.batch_size
    idx = loop.epoch_indices(state, ctx, epoch)[i * batch : (i + 1) * batch]
    set_lr(state.optimizer, lr_at(step, ctx.total, recipe.optim.lr, recipe.schedule))
    gen = step_generator(recipe.seed, step, device=ctx.device)
    flips = loop.batch_flips(recipe, idx, len(data.train_y), epoch)
    x = augment_batch(to_float(data.train_x[idx]), recipe.augment, gen, flips)
    x = normalize(x, data.mean, data.std).contiguous(memory_format=ctx.mem_format)
    y = data.train_y[idx]
    logits = state.step_model(x)
    loss = F.cross_entropy(logits.float(), y, label_smoothing=recipe.train.label_smoothing)
    if not math.isfinite(loss.item()):
        raise RuntimeError("non-finite loss")
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    state.optimizer.step()
    int((logits.argmax(1) == y).sum())
    state.seen += len(y)
    state.step += 1


def build(recipe_name: str, data_dir: str, overrides: list[str], tmp: Path):
    plan = StartPlan(FRESH, recipe=load_recipe(recipe_name, overrides))
    call = context.TrainCall(
        run=rundir.RunDir(tmp), world=SINGLE, data_dir=data_dir, progress=False, log=lambda s: None
    )
    ctx, state = context.build(plan, call)
    state.step_model.train()
    return ctx, state


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--compare", choices=("host-reads", "layout"), required=True)
    p.add_argument("--recipe", default="seed-improved")
    p.add_argument("--data-dir", default="../shared/cifar10")
    p.add_argument("--steps", type=int, default=100, help="steps per variant per round")
    p.add_argument("--rounds", type=int, default=4)
    args = p.parse_args()
    tmp = Path("/tmp/cifarlab-bench-step")
    if args.compare == "host-reads":
        ctx, state = build(args.recipe, args.data_dir, [], tmp)
        variants = [("no host reads", loop.train_step, ctx, state)]
        variants.append(("two host reads", host_read_step, ctx, state))
    else:
        variants = []
        for cl in (False, True):
            ctx, state = build(
                args.recipe, args.data_dir, [f"system.channels_last={str(cl).lower()}"], tmp
            )
            variants.append(("channels_last" if cl else "NCHW", loop.train_step, ctx, state))
    totals = {name: 0.0 for name, *_ in variants}
    for rnd in range(args.rounds):
        for name, fn, ctx, state in variants if rnd % 2 == 0 else variants[::-1]:
            tick = time.perf_counter()
            for _ in range(args.steps):
                fn(state, ctx)
            elapsed = time.perf_counter() - tick
            totals[name] += elapsed
            print(f"round {rnd} {name:<15} {elapsed / args.steps * 1e3:6.2f} ms/step", flush=True)
    first, second = list(totals)
    print(
        f"{args.recipe}, {args.rounds} x {args.steps} steps each: {first} "
        f"{totals[first] / args.rounds / args.steps * 1e3:.2f} ms/step, {second} "
        f"{totals[second] / args.rounds / args.steps * 1e3:.2f} ms/step, "
        f"ratio {totals[first] / totals[second]:.2f}"
    )


if __name__ == "__main__":
    main()
