"""The ``fervideo`` command line: parse, call the library, turn errors into one line and an exit code.

Exit codes (README, 'Exit codes'): 0 ok; 1 some inputs of a batch failed; 2 usage error; 3 bad
input file; 4 model problem; 5 output cannot be written; 130 interrupted (Ctrl-C / SIGTERM).
Heavy imports (TensorFlow, pandas, matplotlib) happen inside the commands that need them, so the
video commands start in well under a second.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from fervideo.errors import EXIT_INTERRUPTED, EXIT_USAGE, INTERRUPTED, FervideoError, ModelError, UsageError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Facial-expression recognition for video files: annotated video and a per-frame emotion timeline.",
    pretty_exceptions_enable=False,
)


class DetectorName(str, Enum):
    blazeface = "blazeface"
    blazeface_short = "blazeface-short"
    yunet = "yunet"
    haar = "haar"


class Fmt(str, Enum):
    csv = "csv"
    parquet = "parquet"
    jsonl = "jsonl"


class Codec(str, Enum):
    h264 = "h264"
    mp4v = "mp4v"


class Split(str, Enum):
    public = "public"
    private = "private"


Detector = Annotated[DetectorName, typer.Option(help="Face detector: blazeface (default, bundled), yunet (needs --detector-model), haar (seeds' method).")]
DetectorModel = Annotated[Path | None, typer.Option(help="Detector model file (YuNet .onnx; overrides the bundled one for others).")]
Model = Annotated[Path | None, typer.Option(help="Emotion model (.tflite or .keras); default: the model shipped in models/.")]
BatchSize = Annotated[int, typer.Option(help="Faces per classifier call (batched across frames).")]
MinFace = Annotated[int, typer.Option(help="Ignore faces smaller than this many pixels (longest box side).")]
DetectEvery = Annotated[int, typer.Option(help="Run the detector every K-th analysed frame; boxes carried by the tracker between.")]
Smooth = Annotated[float, typer.Option(help="Smooth probabilities per face with this time constant in seconds (0 = off); adds *_smoothed columns.")]
Tta = Annotated[bool, typer.Option("--tta", help="Average each face with its mirror image: +1.5 points accuracy (model card), 2x classifier time.")]
TtaFull = Annotated[
    bool,
    typer.Option("--tta-full", help="Average 18 views of each face (mirror, shifts, zooms, rotations): +3 points accuracy (model card), 18x classifier time."),
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
Debug = Annotated[bool, typer.Option(help="Show Python tracebacks for errors.")]
Plain = Annotated[bool, typer.Option(help="Run decode, analysis and encode in one thread (reference path; slower).")]


def _run(debug: bool, fn: Callable[[], int | None], soft_interrupt: bool = False) -> None:
    """Call ``fn``; map our errors to one stderr line + exit code, Ctrl-C/SIGTERM to 130.

    With ``soft_interrupt`` (the video commands, whose frame loops check the flag between frames)
    the first Ctrl-C/SIGTERM only sets the flag, and the loop stops at that safe point: raised at
    an arbitrary point instead, KeyboardInterrupt can land inside a thread pool's bookkeeping and
    leave the process hanging at exit (seen in batch workers). A second signal raises at once.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ info lines are noise to users

    def _interrupt(signum: int, frame: Any) -> None:
        first = not INTERRUPTED.is_set()
        INTERRUPTED.set()
        if not (soft_interrupt and first):
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        code = fn() or 0
    except FervideoError as e:
        if debug:
            traceback.print_exc()
        typer.echo(f"fervideo: error: {e}", err=True)
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt:
        typer.echo("fervideo: interrupted; no partial output was kept", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    raise typer.Exit(code)


def _options(**kw: Any) -> Any:
    from fervideo.pipeline import Options

    kw["tta"] = "full" if kw.pop("tta_full", False) else ("flip" if kw.get("tta") else "off")
    for k in ("detector_model", "model"):
        if kw.get(k) is not None:
            kw[k] = str(kw[k])
    if isinstance(kw.get("detector"), Enum):
        kw["detector"] = kw["detector"].value
    return Options(**kw)


def _progress(total: int | None, desc: str, quiet: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total or None, desc=desc, unit="frame", disable=quiet, leave=False, dynamic_ncols=True)


def _analyse_one(video: Path, opts: Any, quiet: bool, csv_out: Path | None, fmt: str, annotated: Path | None, codec: str, plot: Path | None = None) -> Any:
    from fervideo.pipeline import Analyzer, process_video
    from fervideo.video import check_input_file, check_output_path

    video = check_input_file(video)
    for out in (csv_out, annotated, plot):
        if out is not None:
            check_output_path(out, [video])
    analyzer = Analyzer(opts)
    with _progress(None, video.name, quiet) as bar:

        def size_bar(info: Any) -> None:
            bar.total = info.frame_count_container or None  # a hint: the container may miscount
            bar.refresh()

        report = process_video(video, analyzer, timeline=csv_out, fmt=fmt, annotated=annotated, codec=codec, progress=bar.update, on_start=size_bar)
    for w in report.warnings:
        typer.echo(f"fervideo: warning: {w}", err=True)
    if plot is not None and csv_out is not None:
        from fervideo.outputs import plot_timeline, read_timeline

        plot_timeline(read_timeline(csv_out), plot, title=video.name, smoothed=opts.smooth_s > 0)
    return report


@app.command()
def annotate(
    video: Annotated[Path, typer.Argument(help="Input video file.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Annotated video (default: VIDEO stem + .annotated.mp4).")] = None,
    csv: Annotated[Path | None, typer.Option(help="Also write the timeline here.")] = None,
    codec: Annotated[Codec, typer.Option(help="h264 via PyAV with the input's audio copied (default), or mp4v via OpenCV.")] = Codec.h264,
    detector: Detector = DetectorName.blazeface,
    detector_model: DetectorModel = None,
    model: Model = None,
    batch_size: BatchSize = 32,
    min_face: MinFace = 20,
    detect_every: DetectEvery = 1,
    smooth: Smooth = 0.0,
    tta: Tta = False,
    tta_full: TtaFull = False,
    plain: Plain = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Write a copy of VIDEO with a box, id, emotion and probability bars on every face."""

    def go() -> int:
        out = output or video.with_name(video.stem + ".annotated.mp4")
        opts = _options(
            detector=detector,
            detector_model=detector_model,
            model=model,
            batch_size=batch_size,
            min_face=min_face,
            detect_every=detect_every,
            smooth_s=smooth,
            tta=tta,
            tta_full=tta_full,
            threaded=not plain,
        )
        r = _analyse_one(video, opts, quiet, csv, "csv", out, codec.value)
        typer.echo(f"{out}: {r.frames} frames, {r.frames_with_face} with a face, {len(r.face_ids)} face id(s)", err=True)
        return 0

    _run(debug, go, soft_interrupt=True)


@app.command()
def timeline(
    video: Annotated[Path, typer.Argument(help="Input video file.")],
    csv: Annotated[Path | None, typer.Option("--csv", "-o", help="Timeline output (default: VIDEO stem + .csv/.parquet/.jsonl).")] = None,
    format: Annotated[Fmt, typer.Option("--format", help="csv, parquet or jsonl; same columns.")] = Fmt.csv,
    plot: Annotated[Path | None, typer.Option(help="Also save a PNG plot of the probabilities over time.")] = None,
    stride: Annotated[int, typer.Option(help="Analyse every N-th frame only; skipped frames get no rows.")] = 1,
    detector: Detector = DetectorName.blazeface,
    detector_model: DetectorModel = None,
    model: Model = None,
    batch_size: BatchSize = 32,
    min_face: MinFace = 20,
    detect_every: DetectEvery = 1,
    smooth: Smooth = 0.0,
    tta: Tta = False,
    tta_full: TtaFull = False,
    plain: Plain = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Write the per-frame emotion timeline of VIDEO (no video output)."""

    def go() -> int:
        out = csv or video.with_name(f"{video.stem}.{format.value}")
        opts = _options(
            detector=detector,
            detector_model=detector_model,
            model=model,
            batch_size=batch_size,
            min_face=min_face,
            detect_every=detect_every,
            smooth_s=smooth,
            tta=tta,
            tta_full=tta_full,
            stride=stride,
            threaded=not plain,
        )
        r = _analyse_one(video, opts, quiet, out, format.value, None, "h264", plot)
        typer.echo(f"{out}: {r.analysed_frames} frames analysed, {r.frames_with_face} with a face, {len(r.face_ids)} face id(s)", err=True)
        return 0

    _run(debug, go, soft_interrupt=True)


@app.command()
def batch(
    directory: Annotated[Path, typer.Argument(help="Folder of videos.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (created if missing).")],
    annotate: Annotated[bool, typer.Option("--annotate", help="Also write OUT/<name>.annotated.mp4 per video.")] = False,
    plots: Annotated[bool, typer.Option("--plots", help="Also write OUT/<name>.png timeline plots.")] = False,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Descend into sub-folders.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Redo inputs whose outputs are already complete.")] = False,
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Files processed in parallel (processes).")] = 1,
    file_timeout: Annotated[
        float, typer.Option("--file-timeout", help="Stop a file still running after this many seconds and record it as an error (0: no limit).", min=0)
    ] = 0.0,
    format: Annotated[Fmt, typer.Option("--format", help="Timeline format.")] = Fmt.csv,
    codec: Annotated[Codec, typer.Option(help="Codec of annotated videos.")] = Codec.h264,
    stride: Annotated[int, typer.Option(help="Analyse every N-th frame only.")] = 1,
    detector: Detector = DetectorName.blazeface,
    detector_model: DetectorModel = None,
    model: Model = None,
    batch_size: BatchSize = 32,
    min_face: MinFace = 20,
    detect_every: DetectEvery = 1,
    smooth: Smooth = 0.0,
    tta: Tta = False,
    tta_full: TtaFull = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Analyse every video in DIRECTORY; broken files are reported in OUT/summary.csv, never fatal."""

    def go() -> int:
        from fervideo.batch import BatchOptions, run_batch

        opts = _options(
            detector=detector,
            detector_model=detector_model,
            model=model,
            batch_size=batch_size,
            min_face=min_face,
            detect_every=detect_every,
            smooth_s=smooth,
            tta=tta,
            tta_full=tta_full,
            stride=stride,
        )
        bo = BatchOptions(
            annotate=annotate,
            plots=plots,
            recursive=recursive,
            overwrite=overwrite,
            jobs=jobs,
            file_timeout_s=file_timeout,
            fmt=format.value,
            codec=codec.value,
            quiet=quiet,
        )
        return run_batch(directory, out, opts, bo)

    _run(debug, go, soft_interrupt=True)


@app.command()
def image(
    images: Annotated[list[Path], typer.Argument(help="Still images (jpg, png, ...).")],
    csv: Annotated[Path | None, typer.Option(help="Also write the table as CSV.")] = None,
    annotate_dir: Annotated[Path | None, typer.Option(help="Write annotated copies of the images here.")] = None,
    detector: Detector = DetectorName.blazeface,
    detector_model: DetectorModel = None,
    model: Model = None,
    min_face: MinFace = 20,
    tta: Tta = False,
    tta_full: TtaFull = False,
    debug: Debug = False,
) -> None:
    """Faces and emotion probabilities for still images, printed as a table."""

    def go() -> int:
        from fervideo.still import analyse_images

        opts = _options(detector=detector, detector_model=detector_model, model=model, min_face=min_face, tta=tta, tta_full=tta_full)
        return analyse_images(images, opts, csv, annotate_dir)

    _run(debug, go)


@app.command()
def live(
    source: Annotated[str, typer.Option(help="Camera index (0), stream URL or video file.")] = "0",
    window: Annotated[bool, typer.Option("--window/--no-window", help="Show a window (needs an OpenCV build with GUI); --no-window prints rows.")] = True,
    max_frames: Annotated[int, typer.Option(help="Stop after this many frames (0 = until the source ends or q/Ctrl-C).")] = 0,
    detector: Detector = DetectorName.blazeface,
    detector_model: DetectorModel = None,
    model: Model = None,
    min_face: MinFace = 20,
    smooth: Smooth = 0.0,
    tta: Tta = False,
    tta_full: TtaFull = False,
    debug: Debug = False,
) -> None:
    """Real-time view of a camera, stream or file with fps shown; --no-window prints CSV rows."""

    def go() -> int:
        from fervideo.live import run_live

        opts = _options(
            detector=detector,
            detector_model=detector_model,
            model=model,
            min_face=min_face,
            smooth_s=smooth,
            tta=tta,
            tta_full=tta_full,
            window=1,
            batch_size=8,
        )
        return run_live(source, opts, window, max_frames)

    _run(debug, go)


@app.command()
def info(
    video: Annotated[Path, typer.Argument(help="Video file.")],
    debug: Debug = False,
) -> None:
    """What the tool sees in VIDEO: container, codec, size, rotation, fps, frame counts."""

    def go() -> int:
        from fervideo.video import probe

        i = probe(video, count_frames=True)
        rows = [
            ("file", i.path),
            ("container", i.container or "?"),
            ("codec", i.codec or "?"),
            ("size (as shown)", f"{i.width}x{i.height}"),
            ("rotation", f"{i.rotation} deg"),
            ("fps", f"{float(i.fps):.3f} ({i.fps})"),
            ("duration", f"{i.duration_s:.3f} s" if i.duration_s is not None else "?"),
            ("frames (container)", str(i.frame_count_container)),
            ("frames (decoded)", str(i.frame_count_decoded)),
            ("audio", "yes" if i.has_audio else "no"),
        ]
        for k, v in rows:
            typer.echo(f"{k:<20}{v}")
        return 0

    _run(debug, go)


@app.command()
def train(
    data: Annotated[Path, typer.Option(help="fer2013.npz, fer2013.csv, or a folder with train/ and test/.")],
    arch: Annotated[str, typer.Option(help="Architecture: vgg_lite, resnet_lite, resnet_lite_wide, resnet_lite_small, mini_xception.")] = "vgg_lite",
    epochs: Annotated[int | None, typer.Option(help="Epochs (default 60); with --resume a new value re-plans the run's cosine schedule.")] = None,
    out: Annotated[Path, typer.Option(help="Run folder: checkpoints, log.csv, best.keras, model.tflite.")] = Path("runs/train"),
    resume: Annotated[bool, typer.Option("--resume", help="Continue from OUT/last.keras.")] = False,
    batch_size: Annotated[int, typer.Option(help="Training batch size.")] = 64,
    lr: Annotated[float, typer.Option(help="Peak learning rate (SGD, Nesterov).")] = 0.05,
    limit: Annotated[int | None, typer.Option(help="Use at most N faces per split (quick runs, CI).")] = None,
    precision: Annotated[str, typer.Option(help="auto, float32 or mixed_bfloat16.")] = "auto",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 1234,
    warmup_epochs: Annotated[int, typer.Option(help="Epochs of linear learning-rate warm-up.")] = 2,
    init: Annotated[Path | None, typer.Option(help="Start from this trained .keras model's weights (same --arch): fine-tuning.")] = None,
    teacher: Annotated[Path | None, typer.Option(help="Self-distillation: mix labels with this model's (.keras/.tflite) TTA-averaged probabilities.")] = None,
    teacher_tta: Annotated[str, typer.Option(help="Views the teacher averages: flip (2) or full (18, as --tta-full; 9x slower to compute once).")] = "flip",
    distill: Annotated[float, typer.Option(help="Weight of the teacher's probabilities in the targets (with --teacher).")] = 0.5,
    debug: Debug = False,
) -> None:
    """Train the emotion CNN on the Training split, selecting on PublicTest; exports .tflite at the end."""

    def go() -> int:
        from fervideo.training.export import export_tflite
        from fervideo.training.train import TrainConfig
        from fervideo.training.train import train as run_train

        if epochs is not None and epochs < 1:
            raise UsageError(None, "--epochs must be at least 1")
        if not 0.0 <= distill <= 1.0:
            raise UsageError(None, "--distill must be between 0 and 1")
        if teacher_tta not in ("flip", "full"):
            raise UsageError(None, "--teacher-tta must be flip or full")
        if warmup_epochs < 0:
            raise UsageError(None, "--warmup-epochs must be 0 or more")
        for flag, path in (("--init", init), ("--teacher", teacher)):
            if path is not None and not path.is_file():
                raise ModelError(path, f"{flag} model file not found")
        cfg = TrainConfig(
            data=str(data),
            arch=arch,
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
        )
        best = run_train(cfg, out, resume=resume, epochs=epochs)
        if best.exists():
            export_tflite(best, out / "model.tflite")
            typer.echo(f"best model: {best} (+ {out / 'model.tflite'})", err=True)
        return 0

    _run(debug, go)


@app.command()
def evaluate(
    model: Annotated[Path, typer.Option(help="Model to evaluate (.keras or .tflite).")],
    data: Annotated[Path, typer.Option(help="fer2013.npz, fer2013.csv, or a folder with train/ and test/.")],
    split: Annotated[Split, typer.Option(help="public (PublicTest) or private (PrivateTest).")] = Split.private,
    out: Annotated[Path, typer.Option(help="Report folder.")] = Path("runs/eval"),
    tta: Annotated[bool, typer.Option("--tta", help="Average with the horizontally flipped face.")] = False,
    tta_full: Annotated[bool, typer.Option("--tta-full", help="Average 18 views of each face (mirror, shifts, zooms, rotations).")] = False,
    limit: Annotated[int | None, typer.Option(help="Use at most N faces of the split.")] = None,
    debug: Debug = False,
) -> None:
    """Accuracy, macro F1, per-class report, confusion matrix and plots, tied together in report.md."""

    def go() -> int:
        from fervideo.training.evaluate import evaluate as run_eval

        mode = "full" if tta_full else ("flip" if tta else "off")
        res = run_eval(model, data, split.value, out, tta=mode, limit=limit)
        typer.echo(f"{split.value}: accuracy {res['accuracy']:.4f}, macro F1 {res['macro_f1']:.4f} on {res['n']} faces -> {out / 'report.md'}")
        return 0

    _run(debug, go)


def main() -> None:  # pragma: no cover - console entry alias
    try:
        app()
    except SystemExit as e:
        sys.exit(e.code if e.code is not None else EXIT_USAGE)
