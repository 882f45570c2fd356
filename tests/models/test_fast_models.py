"""fastnet (whitening init, frozen layers, groups), the ResNets, Muon, and TTA views."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from cifarlab.data.batches import normalize, to_float, to_uint8_tensor
from cifarlab.inference import predict_logits, predict_logits_and_plain, tta_views
from cifarlab.models import count_parameters, create_model
from cifarlab.recipe import load_recipe
from cifarlab.train.optim import MuonSGD, build_optimizer, param_groups, zeropower_newton_schulz

MEAN = torch.tensor([0.4914, 0.4822, 0.4465])
STD = torch.tensor([0.2470, 0.2435, 0.2616])
TINY = [16, 32, 32]  # fastnet widths that keep these tests cheap


def _images(sample_data, n=256):
    x = to_float(to_uint8_tensor(sample_data.train_images[:n]))
    return normalize(x, MEAN, STD), torch.from_numpy(sample_data.train_labels[:n])


def test_fastnet_whitening_is_computed_from_data(sample_data):
    x, _ = _images(sample_data, 500)
    # eps (default 5e-4) only damps directions with eigenvalues near it; ~0 here to check whitening.
    model = create_model("fastnet", widths=TINY, whiten_eps=1e-9)
    before = model.whiten.weight.clone()
    model.init_from_data(x)
    w = model.whiten.weight
    assert w.shape == (24, 3, 2, 2) and not torch.equal(w, before)
    assert torch.allclose(w[:12], -w[12:])  # both signs of each eigenvector
    # The first 12 filters whiten 2x2 patches: their outputs have ~identity covariance.
    feats = F.conv2d(x, w[:12]).permute(0, 2, 3, 1).reshape(-1, 12)
    cov = feats.T @ feats / len(feats)
    assert torch.allclose(cov, torch.eye(12), atol=0.02)


def test_fastnet_frozen_parts_stay_frozen_and_groups_cover_the_rest(sample_data):
    x, y = _images(sample_data)
    torch.manual_seed(0)
    model = create_model("fastnet", widths=TINY, whiten_bias_train=0.5)
    model.init_from_data(x)
    recipe = load_recipe("fast94")
    groups = param_groups(recipe.optim, model)
    grouped = [p for g in groups for p in g["params"]]
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert len(grouped) == len(trainable) and {id(p) for p in grouped} == {id(p) for p in trainable}
    assert all(id(model.whiten.weight) != id(p) for p in grouped)
    bn = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bn and all(not m.weight.requires_grad and m.bias.requires_grad for m in bn)

    opt = build_optimizer(recipe.optim, model)
    assert isinstance(opt, MuonSGD)
    w0, b0 = model.whiten.weight.clone(), model.whiten.bias.clone()
    total = 4
    for step in range(total):
        loss = F.cross_entropy(model(x[:64]), y[:64])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        model.after_step(step + 1, total)
        if step == 0:
            assert not bool(model.whiten_bias_frozen)
            b1 = model.whiten.bias.clone()
    assert torch.equal(model.whiten.weight, w0)  # whitening filters never train
    assert not torch.equal(b1, b0)  # the bias trains early on ...
    assert bool(model.whiten_bias_frozen)  # ... and is frozen after half of the steps
    b_frozen = model.whiten.bias.clone()
    loss = F.cross_entropy(model(x[:64]), y[:64])
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    assert model.whiten.bias.grad is None and torch.equal(model.whiten.bias, b_frozen)
    # Muon's filters keep norm sqrt(out_channels) (weight_norm groups)
    conv = model.group1.conv2.weight
    assert conv.norm().item() == pytest.approx(len(conv) ** 0.5, rel=0.05)


def test_a_loaded_state_dict_keeps_the_whitening_bias_frozen(sample_data):
    # A checkpoint of a run past the freeze point resumes frozen, whether or not the loop
    # also calls after_step(start, total) (the buffer is read once, at load).
    x, y = _images(sample_data, 64)
    trained = create_model("fastnet", widths=TINY)
    trained.after_step(10, 10)
    resumed = create_model("fastnet", widths=TINY)
    resumed.load_state_dict(trained.state_dict())
    F.cross_entropy(resumed(x), y).backward()
    assert resumed.whiten.bias.grad is None and resumed.group1.norm1.bias.grad is not None


def test_newton_schulz_orthogonalises():
    torch.manual_seed(0)
    g = torch.randn(64, 288)
    s = torch.linalg.svdvals(zeropower_newton_schulz(g, steps=5))
    # Muon's quintic iteration leaves singular values roughly in (0.5, 1.5), not exactly 1.
    assert s.min() > 0.3 and s.max() < 1.5
    s3 = torch.linalg.svdvals(zeropower_newton_schulz(g.T, steps=3))
    assert s3.max() < 1.5 and s3.min() > 0.05


def test_muon_for_any_model_puts_filters_on_muon_and_the_head_on_sgd():
    model = create_model("resnet20")
    opt = build_optimizer(load_recipe("resnet20", {"optim.name": "muon"}).optim, model)
    muon = [p for g in opt.param_groups if g["muon"] for p in g["params"]]
    sgd = [p for g in opt.param_groups if not g["muon"] for p in g["params"]]
    assert all(p.ndim == 4 for p in muon) and len(muon) == 19
    assert any(p is model.fc.weight for p in sgd)


def test_resnet_sizes_match_their_sources():
    r20 = create_model("resnet20")
    convs = [m for m in r20.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 19  # 6n + 1 convs, plus the fc: 20 weight layers (He et al. 4.2)
    assert count_parameters(r20) == 269_722  # "0.27M" in the paper's Table 6
    assert count_parameters(create_model("resnet18")) == 11_173_962
    r18 = create_model("resnet18")
    assert r18.stem[0].kernel_size == (3, 3) and r18.stem[0].stride == (1, 1)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in r18.modules())


def test_resnet20_downsamples_with_parameter_free_shortcuts():
    r20 = create_model("resnet20")
    assert all(b.project is None for b in r20.layers)
    out = r20.layers[3](torch.randn(2, 16, 32, 32))  # first block of stage 2
    assert out.shape == (2, 32, 16, 16)


def test_tta_views_and_weights():
    x = torch.randn(2, 3, 8, 8)
    for mode, n in (("none", 1), ("flip", 2), ("flip-translate", 6)):
        views = tta_views(x, mode)
        assert len(views) == n and sum(w for w, _ in views) == pytest.approx(1.0)
    flip = tta_views(x, "flip")
    assert torch.equal(flip[1][1], x.flip(-1))
    torch.manual_seed(0)
    model = create_model("fastnet", widths=TINY).eval()
    imgs = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    mean, std = torch.zeros(3), torch.ones(3)
    got = predict_logits(model, imgs, mean, std, tta="flip")
    xf = imgs.float() / 255
    with torch.no_grad():
        want = 0.5 * model(xf) + 0.5 * model(xf.flip(-1))
    assert torch.allclose(got, want, atol=1e-5)


def test_plain_and_tta_logits_come_from_one_pass_over_the_views():
    # A run reports plain and TTA test accuracy; the identity view is computed once for both.
    torch.manual_seed(0)
    model = create_model("fastnet", widths=TINY).eval()
    calls = []
    model.register_forward_pre_hook(lambda m, args: calls.append(len(args[0])))
    imgs = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    mean, std = torch.zeros(3), torch.ones(3)
    tta, plain = predict_logits_and_plain(
        model, imgs, mean, std, tta="flip-translate", batch_size=4
    )
    assert calls == [4] * 6 + [2] * 6  # six views per batch of 4 and of 2, nothing more
    assert torch.equal(plain, predict_logits(model, imgs, mean, std, tta="none", batch_size=4))
    assert torch.equal(
        tta, predict_logits(model, imgs, mean, std, tta="flip-translate", batch_size=4)
    )


@pytest.mark.slow
def test_fast94_trains_through_the_loop_with_tta_and_a_frozen_bias(tmp_path, sample_data):
    out = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "cifarlab", "train", "--recipe", "fast94", "--data-dir", "sample",
        "--out", str(out), "--no-progress",
        "--set", f"model.options.widths={TINY}", "--set", "train.batch_size=500",
        "--set", "train.epochs=1", "--set", "eval.batch_size=500", "--set", "train.eval_points=1",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["tta"] == "flip-translate" and 0 <= metrics["test_accuracy_tta"] <= 1
    assert metrics["steps"] == 4 and metrics["data"]["n_val"] == 0  # all 2,000 images train
    state = torch.load(out / "checkpoint.pt", weights_only=True)["model"]
    assert bool(state["whiten_bias_frozen"])
    # The stored whitening filters are exactly the data-dependent init (never trained). Computed
    # here in this process's threads, as the child's: its patch covariance is a float32 product
    # over 1.9 M patches, and summed over 1 thread instead of 2 it moved the filters by up to
    # 9e-3 on an Intel Xeon (MKL), when in-process runs left the process at their
    # system.threads (train() now restores it).
    model = create_model("fastnet", widths=TINY)
    model.init_from_data(_images(sample_data, 2000)[0])
    assert torch.allclose(state["whiten.weight"], model.whiten.weight, atol=1e-5)


def test_a_short_resnet18_run_learns(tmp_path):
    # Full-width resnet18 is 1.1 GFLOPs/image forward; width 8 keeps the architecture
    # (3x3 stem, no max-pool, 4 stages of 2 blocks) at a CPU-test cost.
    from cifarlab.train.loop import train

    m = train(
        "resnet18",
        out_dir=tmp_path / "r18",
        data_dir="sample",
        overrides={
            "model.options.width": 8,
            "data.val_fraction": 0.1,
            "train.epochs": 1,
            "train.batch_size": 32,
            "train.eval_points": 2,
            "optim.lr": 0.05,
            "eval.tta": "none",
            "system.channels_last": False,
        },
        progress=False,
        log=lambda s: None,
    )
    hist = json.loads((tmp_path / "r18" / "history.json").read_text())
    assert hist["train_loss"][-1] < hist["train_loss"][1]  # second half below the first
    assert m["test_accuracy"] > 0.2  # chance is 0.1


@pytest.mark.slow
def test_fast94_resumed_after_the_bias_froze_is_bit_identical(tmp_path, sample_data):
    # 8 steps, the whitening bias frozen after step 3; the run stops after step 4's checkpoint.
    from cifarlab.train.loop import train

    overrides = {
        "model.options.widths": TINY,
        "train.epochs": 2,
        "train.batch_size": 500,
        "train.eval_points": 8,
        "eval.batch_size": 500,
    }

    class Stop(Exception):
        pass

    def stop_before_step_5_is_saved(line: str) -> None:
        if "Step 5/8" in line:
            raise Stop

    train("fast94", data=sample_data, out_dir=tmp_path / "full", overrides=overrides,
          progress=False, log=lambda s: None)  # fmt: skip
    with pytest.raises(Stop):
        train("fast94", data=sample_data, out_dir=tmp_path / "cut", overrides=overrides,
              progress=False, log=stop_before_step_5_is_saved)  # fmt: skip
    cut = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)
    assert cut["step"] == 4 and bool(cut["model"]["whiten_bias_frozen"])
    train("fast94", data=sample_data, out_dir=tmp_path / "cut", resume=True, progress=False,
          log=lambda s: None)  # fmt: skip
    a, b = (torch.load(tmp_path / r / "checkpoint.pt", weights_only=True) for r in ("full", "cut"))
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert all(torch.equal(sa[i]["momentum_buffer"], sb[i]["momentum_buffer"]) for i in sa)
