"""``fervideo train --engine torch``: the GPU recipe (plain PyTorch, augmentation batched on the device).

Why a second engine: Keras 3 on the torch backend ran ``fervideo train`` at 530 ms a step on an
H100, ~60x slower than this loop, which trains ``vgg_lite_w96`` (the accurate tier) in ~11 minutes
there. It trains the same ``vgg_lite`` network (its spec in :mod:`fervideo.emotions.specs`, built by :mod:`fervideo.emotions.torch_net`) with
the recipe the accurate tier was made with:

* every augmentation on the device in one batched call: horizontal flip, rotation +-12 degrees,
  scale 0.85-1.15 and shift +-10% in one ``affine_grid`` (reflected borders), contrast 0.7-1.3
  and brightness +-40 grey levels, random erasing (half the faces, 2-15% of the area, noise);
* SGD with Nesterov momentum, weight decay on conv/dense weights only, linear warm-up then cosine
  to 0 per step, label smoothing 0.1, square-root class weights, bfloat16 autocast on CUDA;
* the checkpoint is chosen on PublicTest (early stopping too); PrivateTest is never read;
* ``--teacher-probs`` targets (distillation) as in the Keras engine.

It also runs on a CPU (slowly: that is how CI tests it). The run folder holds ``log.csv`` (the
Keras engine's columns), ``last.pt`` (model, optimizer, epoch and RNG state for ``--resume``),
``best.pt`` and, when Keras is installed, ``best.keras``: the weights moved into the Keras
``vgg_lite(width)`` and checked to give the same probabilities (<= 1e-4, float32) on PublicTest
faces, so the tool's TFLite export and every other command take it like any Keras-trained model.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from fervideo.emotions.specs import parse_arch
from fervideo.errors import ModelError, UsageError
from fervideo.labels import EMOTIONS
from fervideo.training import data as fer_data
from fervideo.training.config import TrainConfig
from fervideo.training.ferplus import Validation, parse_targets, selection_score
from fervideo.training.run_folder import BEST, RunFolder, load_teacher_probs, training_set, validation
from fervideo.training.train import float32_model, training_splits

LAST_PT = "last.pt"
BEST_PT = "best.pt"
AGREEMENT = 1e-4


def augment(torch: Any, x: Any) -> Any:
    """The recipe's augmentations for a batch of raw pixels (n, 1, 48, 48), all on x's device."""
    import torch.nn.functional as F

    n, dev = x.shape[0], x.device

    def uniform(lo: float, hi: float, *shape: int) -> Any:
        return lo + (hi - lo) * torch.rand(n, *shape, device=dev)

    x = torch.where((torch.rand(n, device=dev) < 0.5)[:, None, None, None], x.flip(3), x)
    ang = uniform(-math.radians(12), math.radians(12))
    inv = 1.0 / uniform(0.85, 1.15)
    tx, ty = uniform(-0.2, 0.2), uniform(-0.2, 0.2)  # affine_grid units: 0.2 = 10% of the side
    theta = torch.stack(
        [torch.stack([inv * torch.cos(ang), -inv * torch.sin(ang), tx], 1), torch.stack([inv * torch.sin(ang), inv * torch.cos(ang), ty], 1)], 1
    )
    x = F.grid_sample(x, F.affine_grid(theta, list(x.shape), align_corners=False), padding_mode="reflection", align_corners=False)
    mean = x.mean((2, 3), keepdim=True)
    x = ((x - mean) * uniform(0.7, 1.3, 1, 1, 1) + mean + uniform(-40.0, 40.0, 1, 1, 1)).clamp(0, 255)
    area = uniform(0.02, 0.15) * 48 * 48
    ratio = torch.exp(uniform(-math.log(3), math.log(3)))
    h, w = (area * ratio).sqrt().clamp(4, 40), (area / ratio).sqrt().clamp(4, 40)
    y0, x0 = torch.rand(n, device=dev) * (48 - h), torch.rand(n, device=dev) * (48 - w)
    g = torch.arange(48, device=dev, dtype=torch.float32)
    rows = (g[None] >= y0[:, None]) & (g[None] < (y0 + h)[:, None])
    cols = (g[None] >= x0[:, None]) & (g[None] < (x0 + w)[:, None])
    mask = (rows[:, :, None] & cols[:, None, :] & (torch.rand(n, 1, 1, device=dev) < 0.5))[:, None]
    return torch.where(mask, torch.rand_like(x) * 255, x)


def train_torch(config: TrainConfig, out_dir: str | Path, resume: bool = False, epochs: int | None = None) -> Path:
    """Train with the PyTorch engine; returns ``best.keras`` (or ``best.pt`` without Keras)."""
    from fervideo.emotions.torch_net import build_vgg_lite, import_torch, legacy_state_dict

    torch = import_torch()
    run = RunFolder(out_dir, LAST_PT)
    out = run.out
    config, _ = run.config(config, resume, epochs)  # the schedule is a function of the step: nothing to re-plan
    spec = parse_arch(config.arch)
    dataset = fer_data.load(config.data)
    soft_all = load_teacher_probs(config.teacher_probs, dataset, config.teacher_temperature) if config.teacher_probs else None
    dataset, (x_train, y_train), (x_val, y_val) = training_splits(config, dataset)
    run.save_config(config)

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    if dev == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(config.seed)
    n_cls = len(EMOTIONS)
    train_set = training_set(config, dataset, x_train, y_train, soft_all)
    val = validation(config, dataset, y_val)
    target_spec = parse_targets(config.targets)
    # Label smoothing on the (possibly soft) targets, as Keras' CategoricalCrossentropy applies it.
    targets = train_set.targets * (1 - config.label_smoothing) + config.label_smoothing / n_cls
    X = torch.tensor(train_set.x[..., 0], dtype=torch.float32, device=dev)[:, None]
    T = torch.tensor(targets, device=dev)
    W = torch.tensor(train_set.weights, device=dev)
    Xv = torch.tensor(x_val[..., 0], dtype=torch.float32, device=dev)[:, None]
    Yv = torch.tensor(y_val.astype(np.int64), device=dev)

    model = build_vgg_lite(spec).to(dev)
    if config.init:
        from fervideo.emotions.torch_net import load_keras_weights

        src = load_keras_weights(config.init)
        if src.spec != spec:
            raise ModelError(config.init, f"--init model is {src.spec.name}, not {config.arch}")
        model.load_state_dict(src.state_dict())
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    opt = torch.optim.SGD(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=config.lr, momentum=0.9, nesterov=True
    )
    steps = math.ceil(len(X) / config.batch_size)
    total, warm = config.epochs * steps, config.warmup_epochs * steps

    def lr_at(step: int) -> float:
        if step < warm:
            return config.lr * (step + 1) / warm
        return config.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

    start_epoch, best = 0, -1.0
    log = run.log_rows() if resume else []
    if resume:
        state = torch.load(out / LAST_PT, map_location=dev, weights_only=False)
        model.load_state_dict(legacy_state_dict(model, state["model"]))
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        start_epoch = int(state["epoch"]) + 1
        log = log[:start_epoch]
        best = run.best_score(log)
    else:
        run.clear(BEST_PT, LAST_PT)
    autocast = torch.autocast("cuda", torch.bfloat16) if dev == "cuda" else torch.autocast("cpu", enabled=False)
    since_best = 0
    for epoch in range(start_epoch, config.epochs):
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(len(X), device=dev)
        loss_sum, correct = 0.0, 0
        for i in range(steps):
            for g in opt.param_groups:
                g["lr"] = lr_at(epoch * steps + i)
            idx = perm[i * config.batch_size : (i + 1) * config.batch_size]
            with autocast:
                logits = model(augment(torch, X[idx])).float()
            per_face = -(T[idx] * torch.log_softmax(logits, 1)).sum(1) * W[idx]
            loss = per_face.mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == T[idx].argmax(1)).sum())
        val_loss, val_acc, extra = _scored(torch, model, Xv, Yv, val, target_spec)
        row = {
            "epoch": epoch,
            "accuracy": correct / len(X),
            "loss": loss_sum / len(X),
            "val_accuracy": val_acc,
            "val_loss": val_loss,
            "lr": lr_at(min((epoch + 1) * steps, total) - 1),
            "epoch_time_s": round(time.perf_counter() - t0, 1),
            **extra,
        }
        log.append({k: str(v) for k, v in row.items()})
        if val_acc > best:
            best, since_best = val_acc, 0
            with run.saving(BEST_PT) as tmp:
                torch.save({"model": model.state_dict(), "arch": spec.name}, tmp)
        else:
            since_best += 1
        run.write_log(log)
        with run.saving(LAST_PT) as tmp:
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch, "rng": torch.get_rng_state()}, tmp)
        print(f"epoch {epoch + 1}/{config.epochs}: loss {row['loss']:.4f} acc {row['accuracy']:.4f} val_acc {val_acc:.4f} ({row['epoch_time_s']} s)")
        if since_best >= config.patience:
            break
    return export_best(run, config.arch, x_val[:512, :, :, 0])


def _scored(torch: Any, model: Any, x: Any, y: Any, val: Validation, targets: Any) -> tuple[float, float, dict[str, float]]:
    """PublicTest loss (on FER2013 labels) and the selection score; with FER+ votes, both label
    sets' accuracies too (logged as val_fer2013, val_ferplus)."""
    model.eval()
    losses, preds = [], []
    with torch.inference_mode():
        for i in range(0, len(x), 1024):
            logits = model(x[i : i + 1024]).float()
            losses.append(torch.nn.functional.cross_entropy(logits, y[i : i + 1024], reduction="sum").item())
            preds.append(logits.argmax(1).cpu().numpy())
    fer, plus = val.scores(np.concatenate(preds))
    extra = {} if plus is None else {"val_fer2013": fer, "val_ferplus": plus}
    return sum(losses) / len(x), selection_score(targets, fer, plus), extra


def export_best(run: RunFolder, arch: str, faces: np.ndarray) -> Path:
    """``best.pt`` -> ``best.keras`` (the Keras ``vgg_lite(width)`` with the same weights), checked
    to agree within 1e-4 on ``faces``; without Keras installed, ``best.pt`` is the result."""
    from fervideo.emotions.torch_net import build_vgg_lite, import_torch, keras_weights, legacy_state_dict

    torch = import_torch()
    out = run.out
    if not (out / BEST_PT).exists():
        return out / BEST_PT
    try:
        from fervideo.emotions.architectures import import_keras

        import_keras()
    except UsageError:
        return out / BEST_PT
    net = build_vgg_lite(parse_arch(arch))
    net.load_state_dict(legacy_state_dict(net, torch.load(out / BEST_PT, map_location="cpu", weights_only=False)["model"]))
    net.eval()
    model = float32_model(arch, keras_weights(net))
    x = faces.astype(np.float32)
    with torch.inference_mode():
        ref = torch.softmax(net(torch.from_numpy(x)[:, None]), 1).numpy()
    got = np.asarray(model(x[..., None], training=False))
    diff = float(np.abs(ref - got).max())
    if diff > AGREEMENT:
        raise ModelError(out / BEST_PT, f"Keras copy of the PyTorch weights disagrees by {diff:.2e} (> {AGREEMENT:g})")
    with run.saving(BEST) as tmp:
        model.save(tmp)
    (out / "export.json").write_text(json.dumps({"keras_vs_torch_max_abs_diff": diff, "faces": len(x)}, indent=1) + "\n")
    return out / BEST
