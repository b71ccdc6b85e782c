"""The model commands: ``train`` (both engines, then the TFLite export) and ``evaluate``.

``train`` only gathers its flags into a :class:`~fervideo.training.TrainConfig` (whose fields they
are) and calls :func:`fervideo.training.run`, which checks it before TensorFlow or PyTorch loads.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from fervideo.cli.common import Debug, Tta, TtaMode, app, finite, run
from fervideo.emotions.specs import ARCHITECTURES
from fervideo.training.config import PRECISIONS, ZOOM, TrainConfig
from fervideo.training.ferplus import TARGETS_HELP


class Labels(str, Enum):
    fer2013 = "fer2013"
    ferplus = "ferplus"
    both = "both"


class Split(str, Enum):
    public = "public"
    private = "private"


@app.command()
def train(
    data: Annotated[Path, typer.Option(help="fer2013.npz, fer2013.csv, or a folder with train/ and test/.")],
    arch: Annotated[str, typer.Option(help=f"Architecture: {', '.join(ARCHITECTURES)}.")] = "vgg_lite",
    epochs: Annotated[int | None, typer.Option(help="Epochs (default 60); with --resume a new value re-plans the run's cosine schedule.")] = None,
    out: Annotated[Path, typer.Option(help="Run folder: checkpoints, log.csv, best.keras, model.tflite.")] = Path("runs/train"),
    resume: Annotated[bool, typer.Option("--resume", help="Continue from OUT/last.keras.")] = False,
    batch_size: Annotated[int, typer.Option(help="Training batch size.")] = 64,
    lr: Annotated[float, typer.Option(parser=finite, help="Peak learning rate (SGD, Nesterov).")] = 0.05,
    limit: Annotated[int | None, typer.Option(help="Use at most N faces per split (quick runs, CI).")] = None,
    precision: Annotated[str, typer.Option(help=f"Numeric precision: {', '.join(PRECISIONS)} (auto: bfloat16 where the CPU has it).")] = "auto",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 1234,
    warmup_epochs: Annotated[int, typer.Option(help="Epochs of linear learning-rate warm-up.")] = 2,
    init: Annotated[Path | None, typer.Option(help="Start from this trained .keras model's weights (same --arch): fine-tuning.")] = None,
    teacher: Annotated[Path | None, typer.Option(help="Self-distillation: mix labels with this model's (.keras/.tflite) TTA-averaged probabilities.")] = None,
    teacher_tta: Annotated[str, typer.Option(help="Views the teacher averages: flip (2) or full (18, as --tta full; 9x slower to compute once).")] = "flip",
    teacher_probs: Annotated[
        Path | None,
        typer.Option(
            help="Distil from ready-made teacher probabilities (npz: usage, labels, one (n, 7) array per teacher view, "
            "e.g. shared/models/gpu_trained/teacher_probs.npz); their mean is the teacher."
        ),
    ] = None,
    teacher_temperature: Annotated[float, typer.Option(parser=finite, help="Soften --teacher-probs targets: logits / T (1 = as given).")] = 1.0,
    distill: Annotated[
        float, typer.Option(parser=finite, help="Weight of the teacher's probabilities in the targets (with --teacher or --teacher-probs).")
    ] = 0.5,
    patience: Annotated[int, typer.Option(help="Stop after this many epochs without a better PublicTest accuracy.")] = 15,
    zoom: Annotated[
        float | None,
        typer.Option(
            parser=finite,
            help="Scale augmentation, zoomed in or out by up to this fraction (default: in 0.15, out 0.1). 0.25 covers the framing "
            "spread of the pipeline's crop (keras engine).",
        ),
    ] = None,
    targets: Annotated[str, typer.Option(help=f"What the network learns: {TARGETS_HELP}. FER+ needs the votes in the data file (fer2013.npz).")] = "fer2013",
    balance: Annotated[
        str,
        typer.Option(
            help="Class balance: weights (per-face loss weights from the targets in use), prior (targets divided by the square root "
            "of their class share), both, or none."
        ),
    ] = "weights",
    engine: Annotated[
        str,
        typer.Option(
            help="keras: the CPU engine (TensorFlow; any --arch). torch: plain PyTorch with augmentation batched on the device, "
            "for a CUDA GPU (~60x faster there than Keras-on-torch; the accurate tier's recipe), vgg_lite family only; "
            "it runs on a CPU too, slowly (the gpu extra)."
        ),
    ] = "keras",
    debug: Debug = False,
) -> None:
    """Train the emotion CNN on the Training split, selecting on PublicTest; exports .tflite at the end.

    Which engine where: on CPU cores, --engine keras (the default). On a CUDA GPU, --engine torch
    (pip install 'fervideo[gpu]'); the accurate tier was made with
    --engine torch --arch vgg_lite_w96 --epochs 257 --batch-size 128 --lr 0.1 --warmup-epochs 3 --patience 300.
    """

    def go() -> int:
        from fervideo.training import run as run_training

        cfg = TrainConfig(
            data=str(data),
            arch=arch,
            engine=engine,
            epochs=epochs if epochs is not None else TrainConfig.epochs,
            batch_size=batch_size,
            lr=lr,
            limit=limit,
            precision=precision,
            seed=seed,
            warmup_epochs=warmup_epochs,
            init=str(init) if init else None,
            teacher=str(teacher) if teacher else None,
            distill=distill,
            teacher_tta=teacher_tta,
            teacher_probs=str(teacher_probs) if teacher_probs else None,
            teacher_temperature=teacher_temperature,
            patience=patience,
            zoom_in=zoom if zoom is not None else ZOOM[0],
            zoom_out=zoom if zoom is not None else ZOOM[1],
            targets=targets,
            balance=balance,
        )
        result = run_training(cfg, out, resume=resume, epochs=epochs)
        if result.tflite is None:
            typer.echo(f"best model: {result.best} (its .keras/.tflite export needs the train extra; then: fervideo train --out {out} --resume)", err=True)
        elif result.best.exists():
            typer.echo(f"best model: {result.best} (+ {result.tflite})", err=True)
        return 0

    run(debug, go)


@app.command()
def evaluate(
    model: Annotated[str, typer.Option(help="Model to evaluate: fast, accurate, or a .keras/.tflite path.")],
    data: Annotated[Path, typer.Option(help="fer2013.npz, fer2013.csv, or a folder with train/ and test/.")],
    split: Annotated[Split, typer.Option(help="public (PublicTest) or private (PrivateTest).")] = Split.private,
    out: Annotated[Path, typer.Option(help="Report folder.")] = Path("runs/eval"),
    tta: Tta = TtaMode.off,
    limit: Annotated[int | None, typer.Option(help="Use at most N faces of the split.")] = None,
    labels: Annotated[
        Labels,
        typer.Option(
            help="Label set: fer2013 (the dataset's labels: the intended expression), ferplus (the FER+ majority of 10 annotators: "
            "what people see; needs the votes in the npz), or both."
        ),
    ] = Labels.both,
    debug: Debug = False,
) -> None:
    """Accuracy, macro F1, per-class report, confusion matrix and plots for each label set, tied together in report.md."""

    def go() -> int:
        from fervideo.training.evaluate import evaluate as run_eval

        res = run_eval(model, data, split.value, out, tta=tta.value, limit=limit, labels=labels.value)
        for name in res["labels"]:
            m = res[name]
            dropped = f" ({m['dropped']} without a 7-class majority dropped)" if name == "ferplus" else ""
            typer.echo(f"{split.value}, {name}: accuracy {m['accuracy']:.4f}, macro F1 {m['macro_f1']:.4f} on {m['n']} faces{dropped}")
        typer.echo(f"report: {out / 'report.md'}")
        return 0

    run(debug, go)
