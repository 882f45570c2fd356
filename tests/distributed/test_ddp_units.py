"""The per-rank arithmetic and the launcher's command line, without starting processes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cifarlab.cli.main import build_parser
from cifarlab.cli.train_cmd import _child_argv
from cifarlab.errors import RecipeError, TrainingError
from cifarlab.train.distributed import World, rank_share, torchrun_args


@pytest.mark.parametrize("n,size", [(32, 2), (17, 2), (8, 3), (2, 4), (1000, 7)])
def test_rank_shares_are_contiguous_and_cover_the_batch(n, size):
    shares = [rank_share(n, r, size) for r in range(size)]
    assert shares[0][0] == 0 and shares[-1][1] == n
    assert all(shares[r][1] == shares[r + 1][0] for r in range(size - 1))
    lengths = [hi - lo for lo, hi in shares]
    assert max(lengths) - min(lengths) <= 1
    assert lengths == [len(c) for c in torch.arange(n).tensor_split(size)]


def test_uneven_last_batch_weighting_gives_the_global_mean_gradient():
    # The loop scales rank r's mean loss by share = n_r * world / n; DDP then averages.
    torch.manual_seed(0)
    w = torch.randn(5, 3, requires_grad=True)
    x, y = torch.randn(17, 5), torch.randint(0, 3, (17,))
    (g_single,) = torch.autograd.grad(F.cross_entropy(x @ w, y), w)
    grads = []
    for r in range(2):
        lo, hi = rank_share(17, r, 2)
        share = (hi - lo) * 2 / 17
        grads.append(torch.autograd.grad(F.cross_entropy(x[lo:hi] @ w, y[lo:hi]) * share, w)[0])
    assert torch.allclose(sum(grads) / 2, g_single, atol=1e-6)


def test_batch_sizes_that_do_not_split_are_refused():
    two = World(size=2, active=True)
    assert two.check_batch(32, 1600) == 16
    assert World().check_batch(33, 1600) == 33
    with pytest.raises(RecipeError, match="train.batch_size: the global batch 33"):
        two.check_batch(33, 1600)
    with pytest.raises(RecipeError, match="last batch would hold 1 images"):
        two.check_batch(32, 1601)


def test_launcher_arguments():
    assert torchrun_args(2, ["train"]) == [
        "--nproc-per-node",
        "2",
        "--max-restarts",
        "0",
        "--standalone",
        "-m",
        "cifarlab",
        "train",
    ]
    multi = torchrun_args(1, ["train"], nnodes=2, node_rank=1, rdzv_endpoint="10.0.0.1:29500")
    assert (
        multi[multi.index("--nnodes") + 1] == "2" and multi[multi.index("--node-rank") + 1] == "1"
    )
    assert multi[multi.index("--rdzv-endpoint") + 1] == "10.0.0.1:29500"
    with pytest.raises(TrainingError, match="--rdzv-endpoint"):
        torchrun_args(1, ["train"], nnodes=2)
    with pytest.raises(TrainingError, match="--node-rank"):
        torchrun_args(1, ["train"], nnodes=2, node_rank=2, rdzv_endpoint="h:1")


def test_workers_get_every_option_but_the_launchers():
    args = build_parser().parse_args(
        [
            "train",
            "--nproc",
            "2",
            "--recipe",
            "seed-improved",
            "--set",
            "train.epochs=0.4",
            "--set",
            "seed=3",
            "--no-progress",
            "--data-dir",
            "sample",
            "--out",
            "x",
        ]
    )
    argv = _child_argv(args)
    assert "--nproc" not in argv and "--out" not in argv
    assert argv[argv.index("--recipe") + 1] == "seed-improved"
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--set"] == [
        "train.epochs=0.4",
        "seed=3",
    ]
    assert "--no-progress" in argv and "--progress" not in argv
    assert argv[argv.index("--data-dir") + 1] == "sample"
