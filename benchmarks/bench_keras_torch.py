"""Could Keras 3 on the torch backend serve the GPU path from the one Keras definition? (issue 26)

    python benchmarks/bench_keras_torch.py [--tier fast] [--faces 2048] [--batch 1024] [--device cpu]

Runs a tier's ``.keras`` file through Keras 3 with ``KERAS_BACKEND=torch`` (in a child process:
the backend is fixed at Keras' import) and, in this process, the GPU path as it ships (the tier's
float TFLite graph in plain PyTorch, :class:`fervideo.emotions.torch_net.TorchClassifier`), on
the same random faces, same batch, same device, best of 3 after a warm-up; prints faces/s of both,
their ratio and the largest probability difference. Needs the train and gpu extras.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, sys, time
import numpy as np
import keras
assert keras.backend.backend() == "torch", keras.backend.backend()
import torch
keras_path, faces_path, batch, device = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
faces = np.load(faces_path).astype(np.float32)[..., None]
with torch.device(device):
    model = keras.saving.load_model(keras_path, compile=False)
    def run():
        return np.concatenate([np.asarray(model.predict_on_batch(faces[i : i + batch])) for i in range(0, len(faces), batch)])
    out = run()
    times = []
    for _ in range(3):
        t0 = time.perf_counter(); run(); times.append(time.perf_counter() - t0)
np.save(faces_path + ".keras_torch.npy", out)
print(json.dumps({"faces_per_s": len(faces) / min(times)}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tier", default="fast", choices=["fast", "accurate"])
    ap.add_argument("--faces", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    from fervideo.emotions.torch_net import TorchClassifier, import_torch
    from fervideo.model_files import TIERS, models_dir, resolve_model

    torch = import_torch()
    if args.device == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    faces = np.random.default_rng(0).integers(0, 256, (args.faces, 48, 48), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        faces_path = str(Path(tmp) / "faces.npy")
        np.save(faces_path, faces)
        env = {**os.environ, "KERAS_BACKEND": "torch", "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", "")}
        if args.device != "cpu":
            env.pop("CUDA_VISIBLE_DEVICES")
        keras_file = models_dir() / TIERS[args.tier][1]
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(keras_file), faces_path, str(args.batch), args.device], capture_output=True, text=True, env=env
        )
        if proc.returncode != 0:
            raise SystemExit(f"Keras on torch failed:\n{proc.stderr[-2000:]}")
        keras_torch = json.loads(proc.stdout.strip().splitlines()[-1])["faces_per_s"]
        keras_probs = np.load(faces_path + ".keras_torch.npy")
    clf = TorchClassifier(resolve_model(args.tier, "float32"), device="cuda" if args.device != "cpu" else "cpu", batch_size=args.batch)
    ref = clf.predict(faces)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        clf.predict(faces)
        times.append(time.perf_counter() - t0)
    plain = len(faces) / min(times)
    print(f"tier {args.tier}, {args.faces} faces, batch {args.batch}, device {args.device}, torch {torch.__version__}")
    print(f"Keras 3 on the torch backend (.keras):        {keras_torch:8.0f} faces/s")
    print(f"plain PyTorch, the float TFLite graph (ships): {plain:8.0f} faces/s  ({plain / keras_torch:.2f}x)")
    print(f"largest probability difference: {np.abs(keras_probs - ref).max():.2e}")


if __name__ == "__main__":
    main()
