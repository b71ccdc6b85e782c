"""The ``fervideo`` command line: parse, call the library, turn errors into one line and an exit code.

Exit codes (README, 'Exit codes'): 0 ok; 1 some inputs of a batch failed; 2 usage error; 3 bad
input file; 4 model problem; 5 output cannot be written; 130 interrupted (Ctrl-C / SIGTERM).
Heavy imports (TensorFlow, pandas, matplotlib) happen inside the commands that need them, so the
video commands start in well under a second.
"""

from __future__ import annotations

import functools
import inspect
import math
import os
import signal
import sys
import traceback
import typing
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from fervideo.emotions.architectures import ARCHITECTURES  # names only: Keras is imported lazily
from fervideo.errors import EXIT_INTERRUPTED, EXIT_USAGE, INTERRUPTED, FervideoError, ModelError, UsageError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Facial-expression recognition for video files: annotated video and a per-frame emotion timeline.",
    pretty_exceptions_enable=False,
    # Plain click help: the rich layout printed a '<bool>' metavar beside every flag.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

PRECISIONS = ("auto", "float32", "mixed_bfloat16")


def _version(value: bool) -> None:
    if value:
        from fervideo import __version__

        typer.echo(f"fervideo {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.", callback=_version, is_eager=True)] = False,
) -> None:
    """Facial-expression recognition for video files: annotated video and a per-frame emotion timeline."""


from fervideo.faces import DETECTORS  # noqa: E402 - the registry builds the --detector choices

DetectorName = Enum("DetectorName", {name.replace("-", "_"): name for name in DETECTORS}, type=str)  # type: ignore[misc]


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


def finite(value: str | float) -> float:
    """Every float option's parser: click's FLOAT takes 'nan' and 'inf', and --smooth nan silently
    turned smoothing off (issue 25); a usage error (exit 2) instead."""
    try:
        v = float(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a number") from None
    if not math.isfinite(v):
        raise typer.BadParameter(f"{value!r} is not a finite number")
    return v


Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
Debug = Annotated[bool, typer.Option("--debug", help="Show Python tracebacks for errors.")]

# The analysis options, declared once. Each video command names the ones it takes in
# @analysis_options(...); they arrive as one Options object, built and validated in _options().
_SHARED: dict[str, tuple[Any, Any]] = {
    "detector": (
        Annotated[DetectorName, typer.Option(help=f"Face detector: {', '.join(DETECTORS)} (blazeface: bundled, default; yunet needs --detector-model).")],
        DetectorName.blazeface,
    ),
    "detector_model": (Annotated[Path | None, typer.Option(help="Detector model file (YuNet .onnx; overrides the bundled one for others).")], None),
    "model": (
        Annotated[
            str | None,
            typer.Option(
                help="Emotion model: accurate (default; GPU-trained, 73.1% FER2013 in int8, ~950 faces/s on 2 cores), fast (67.5% in int8, "
                "~3,600 faces/s) "
                "or a .tflite/.keras path."
            ),
        ],
        None,
    ),
    "device": (
        Annotated[
            str,
            typer.Option(help="Where faces are classified: cpu (TFLite, default), gpu (PyTorch + CUDA, the gpu extra), auto (gpu if usable, else cpu)."),
        ],
        "cpu",
    ),
    "batch_size": (Annotated[int, typer.Option(help="Faces per classifier call (batched across frames).")], 32),
    "min_face": (Annotated[int, typer.Option(help="Ignore faces smaller than this many pixels (longest box side).")], 20),
    "detect_every": (Annotated[int, typer.Option(help="Run the detector every K-th analysed frame; boxes carried by the tracker between.")], 1),
    "stride": (Annotated[int, typer.Option(help="Analyse every N-th frame only; skipped frames get no rows.")], 1),
    "smooth": (
        Annotated[
            float, typer.Option(parser=finite, help="Smooth probabilities per face with this time constant in seconds (0 = off); adds *_smoothed columns.")
        ],
        0.0,
    ),
    "tta": (Annotated[bool, typer.Option("--tta", help="Average each face with its mirror image: +1.5 points (model card), 2x classifier time.")], False),
    "tta_full": (
        Annotated[
            bool,
            typer.Option("--tta-full", help="Average 18 views of each face (mirror, shifts, zooms, rotations): +3 points (model card), 18x classifier time."),
        ],
        False,
    ),
    "precision": (
        Annotated[
            str,
            typer.Option(
                help="Which of a tier's models the CPU runs: int8 (full-integer, ~4x faster, its own measured accuracy: models/README_int8.md) "
                "or float32 (outputs equal to Keras and to --device gpu)."
            ),
        ],
        "int8",
    ),
    "align": (
        Annotated[
            bool,
            typer.Option(
                "--align/--no-align",
                help="Roll each face upright by the detector's eye landmarks before classifying it (blazeface, yunet; default on).",
            ),
        ],
        True,
    ),
    "plain": (Annotated[bool, typer.Option("--plain", help="Run decode, analysis and encode in one thread (reference path; slower).")], False),
}


def analysis_options(*names: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add the shared options ``names`` to a command; the command receives them as ``opts``
    (an Options), so each option is declared, converted and validated in one place."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(fn)
        hints = typing.get_type_hints(fn, include_extras=True)  # this module's string annotations, evaluated
        own = [p.replace(annotation=hints[p.name]) for p in sig.parameters.values() if p.name != "opts"]
        tail = [p for p in own if p.name in ("quiet", "debug")]
        head = [p for p in own if p.name not in ("quiet", "debug")]
        extra = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, annotation=_SHARED[n][0], default=_SHARED[n][1]) for n in names]
        params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in head] + extra + [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in tail]

        @functools.wraps(fn)
        def command(**kw: Any) -> Any:
            shared = {n: kw.pop(n) for n in names}
            return fn(opts=_options(**shared), **kw)

        command.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params} | {"return": None}
        return command

    return deco


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
    from fervideo.logs import to_terminal

    to_terminal()
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
    """CLI values -> :class:`~fervideo.pipeline.Options`, whose ``validate()`` is the one place they are checked."""
    from fervideo.pipeline import Options

    kw["tta"] = "full" if kw.pop("tta_full", False) else ("flip" if kw.get("tta") else "off")
    if "smooth" in kw:
        kw["smooth_s"] = kw.pop("smooth")
    if "plain" in kw:
        kw["threaded"] = not kw.pop("plain")
    for k in ("detector_model", "model"):
        if kw.get(k) is not None:
            kw[k] = str(kw[k])
    if isinstance(kw.get("detector"), Enum):
        kw["detector"] = kw["detector"].value
    return Options(**kw)  # validated by Options.validate() when the Analyzer or batch starts, inside _run


def _progress(total: int | None, desc: str, quiet: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total or None, desc=desc, unit="frame", disable=quiet, leave=False, dynamic_ncols=True)


def _analyse_one(video: Path, opts: Any, quiet: bool, csv_out: Path | None, fmt: str, annotated: Path | None, codec: str, plot: Path | None = None) -> Any:
    from fervideo.files import check_input_file, check_output_path
    from fervideo.pipeline import Analyzer, process_video
    from fervideo.video import check_annotated_path

    video = check_input_file(video)
    if annotated is not None:
        check_annotated_path(annotated)
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


VIDEO_OPTIONS = ("detector", "detector_model", "model", "device", "batch_size", "min_face", "detect_every", "smooth", "tta", "tta_full", "align", "precision")


@app.command()
@analysis_options(*VIDEO_OPTIONS, "plain")
def annotate(
    video: Annotated[Path, typer.Argument(help="Input video file.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Annotated video: .mp4, .mov, .mkv or .avi (default: VIDEO + .annotated.mp4).")] = None,
    csv: Annotated[Path | None, typer.Option(help="Also write the timeline here.")] = None,
    codec: Annotated[Codec, typer.Option(help="h264 via PyAV with the input's audio copied (default), or mp4v via OpenCV (no audio).")] = Codec.h264,
    quiet: Quiet = False,
    debug: Debug = False,
    opts: Any = None,
) -> None:
    """Write a copy of VIDEO with a box, id, emotion and probability bars on every face."""

    def go() -> int:
        out = output or video.with_name(video.stem + ".annotated.mp4")
        r = _analyse_one(video, opts, quiet, csv, "csv", out, codec.value)
        typer.echo(f"{out}: {r.frames} frames, {r.frames_with_face} with a face, {len(r.face_ids)} face id(s)", err=True)
        return 0

    _run(debug, go, soft_interrupt=True)


@app.command()
@analysis_options(*VIDEO_OPTIONS, "stride", "plain")
def timeline(
    video: Annotated[Path, typer.Argument(help="Input video file.")],
    csv: Annotated[Path | None, typer.Option("--csv", "-o", help="Timeline output (default: VIDEO stem + .csv/.parquet/.jsonl).")] = None,
    format: Annotated[Fmt, typer.Option("--format", help="csv, parquet or jsonl; same columns.")] = Fmt.csv,
    plot: Annotated[Path | None, typer.Option(help="Also save a PNG plot of the probabilities over time.")] = None,
    quiet: Quiet = False,
    debug: Debug = False,
    opts: Any = None,
) -> None:
    """Write the per-frame emotion timeline of VIDEO (no video output)."""

    def go() -> int:
        out = csv or video.with_name(f"{video.stem}.{format.value}")
        r = _analyse_one(video, opts, quiet, out, format.value, None, "h264", plot)
        typer.echo(f"{out}: {r.analysed_frames} frames analysed, {r.frames_with_face} with a face, {len(r.face_ids)} face id(s)", err=True)
        return 0

    _run(debug, go, soft_interrupt=True)


@app.command()
@analysis_options(*VIDEO_OPTIONS, "stride")
def batch(
    directory: Annotated[str, typer.Argument(help="Folder of videos, or an fsspec URL such as s3://bucket/videos (the remote extra).", metavar="DIR")],
    out: Annotated[
        str,
        typer.Option(
            "--out",
            "-o",
            metavar="OUT",
            help="Output folder (created if missing), or an fsspec URL such as s3://bucket/prefix (the remote extra, plus the "
            "filesystem's package, e.g. s3fs; credentials from the environment).",
        ),
    ],
    annotate: Annotated[bool, typer.Option("--annotate", help="Also write OUT/<name>.annotated.mp4 per video.")] = False,
    plots: Annotated[bool, typer.Option("--plots", help="Also write OUT/<name>.png timeline plots.")] = False,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Descend into sub-folders.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Redo inputs whose outputs are complete and were made with the same options.")] = False,
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Files processed in parallel (processes).")] = 1,
    file_timeout: Annotated[
        float,
        typer.Option("--file-timeout", parser=finite, help="Stop a file still running after this many seconds and record it as an error (0: no limit)."),
    ] = 0.0,
    format: Annotated[Fmt, typer.Option("--format", help="Timeline format.")] = Fmt.csv,
    codec: Annotated[Codec, typer.Option(help="Codec of annotated videos.")] = Codec.h264,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="ADDRESS",
            help="Run the files on a Ray cluster (the ray extra): local (start one on this machine), auto (the cluster 'ray start' runs here) "
            "or ray://HOST:10001. OUT must be a path every node sees, or a URL.",
        ),
    ] = None,
    chunk_s: Annotated[
        float,
        typer.Option(
            "--chunk-s",
            metavar="SECONDS",
            parser=finite,
            help="With --ray: split local files longer than this into chunks analysed on different workers; the timeline is the one a "
            "single pass gives, byte for byte (0: files whole). Not with --annotate or --detect-every > 1.",
        ),
    ] = 0.0,
    quiet: Quiet = False,
    debug: Debug = False,
    opts: Any = None,
) -> None:
    """Analyse every video in DIRECTORY; broken files are reported in OUT/summary.csv, never fatal."""

    def go() -> int:
        from fervideo.batch import BatchOptions, run_batch
        from fervideo.batch.run import check_chunk_options

        bo = BatchOptions(
            annotate=annotate,
            plots=plots,
            recursive=recursive,
            overwrite=overwrite,
            jobs=jobs,
            file_timeout_s=file_timeout,
            chunk_s=chunk_s,
            fmt=format.value,
            codec=codec.value,
            quiet=quiet,
        )
        check_chunk_options(opts, bo, ray)
        if ray is not None:
            from fervideo.batch.ray_cluster import import_ray

            import_ray()  # the missing extra is one line before any work
        result = run_batch(directory, out, opts, bo, ray_address=ray)
        for r in result.failed:
            typer.echo(f"fervideo: error: {r['input']}: {r['message']}", err=True)
        ok = len(result.rows) - len(result.failed)
        typer.echo(f"{result.summary}: {ok} ok, {len(result.failed)} failed of {len(result.rows)} videos", err=True)
        return result.exit_code

    _run(debug, go, soft_interrupt=True)


@app.command()
@analysis_options("detector", "detector_model", "model", "device", "min_face", "tta", "tta_full", "align", "precision")
def image(
    images: Annotated[list[Path], typer.Argument(help="Still images (jpg, png, ...).")],
    csv: Annotated[Path | None, typer.Option(help="Also write the table as CSV.")] = None,
    annotate_dir: Annotated[Path | None, typer.Option(help="Write annotated copies of the images here.")] = None,
    debug: Debug = False,
    opts: Any = None,
) -> None:
    """Faces and emotion probabilities for still images, printed as a table."""

    def go() -> int:
        from fervideo.still import analyse_images, format_table

        res = analyse_images(images, opts, csv, annotate_dir)
        for e in res.errors:
            typer.echo(f"fervideo: error: {e}", err=True)
        if res.rows:  # nothing readable: the error lines say it all, no empty table under them
            typer.echo(format_table(res.rows))
        return res.exit_code

    _run(debug, go)


@app.command()
@analysis_options("detector", "detector_model", "model", "device", "min_face", "smooth", "tta", "tta_full", "align", "precision")
def live(
    source: Annotated[str, typer.Option(help="Camera index (0), stream URL or video file.")] = "0",
    window: Annotated[
        bool, typer.Option("--window/--no-window", help="Show a window (pip install 'fervideo[live]' for pygame); --no-window prints timeline rows.")
    ] = True,
    max_frames: Annotated[int, typer.Option(help="Stop after this many frames (0 = until the source ends or q/Ctrl-C).")] = 0,
    fast: Annotated[bool, typer.Option("--fast", help="Play a file as fast as it can be analysed, not at its own speed.")] = False,
    debug: Debug = False,
    opts: Any = None,
) -> None:
    """Real-time view of a camera, stream or file with fps shown; --no-window prints CSV rows."""

    def go() -> int:
        from fervideo.live import run_live

        opts.window, opts.batch_size = 1, 8  # classify every frame as it comes: latency over throughput
        r = run_live(source, opts, window, max_frames, fast=fast, rows_out=sys.stdout)
        typer.echo(f"fervideo live: {r.frames} frames, {r.fps:.1f} fps", err=True)
        return 0

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
    teacher_tta: Annotated[str, typer.Option(help="Views the teacher averages: flip (2) or full (18, as --tta-full; 9x slower to compute once).")] = "flip",
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
            "spread of the pipeline's crop (keras engine)."
        ),
    ] = None,
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
        from fervideo.training.export import export_tflite
        from fervideo.training.train import TrainConfig
        from fervideo.training.train import train as run_train

        # Checked before TensorFlow loads and before the run folder is touched (no state.json).
        if arch not in ARCHITECTURES:
            raise UsageError(None, f"unknown --arch {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
        if engine not in ("keras", "torch"):
            raise UsageError(None, f"unknown --engine {engine!r}; choose keras or torch")
        if engine == "torch":
            from fervideo.training.torch_engine import vgg_width

            vgg_width(arch)
            if teacher is not None:
                raise UsageError(None, "--engine torch takes --teacher-probs, not --teacher")
        if patience < 1:
            raise UsageError(None, "--patience must be at least 1")
        if precision not in PRECISIONS:
            raise UsageError(None, f"unknown --precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
        if epochs is not None and epochs < 1:
            raise UsageError(None, "--epochs must be at least 1")
        if not 0.0 <= distill <= 1.0:
            raise UsageError(None, "--distill must be between 0 and 1")
        if teacher_tta not in ("flip", "full"):
            raise UsageError(None, "--teacher-tta must be flip or full")
        if warmup_epochs < 0:
            raise UsageError(None, "--warmup-epochs must be 0 or more")
        if teacher is not None and teacher_probs is not None:
            raise UsageError(None, "give --teacher or --teacher-probs, not both")
        if teacher_temperature <= 0:
            raise UsageError(None, "--teacher-temperature must be above 0")
        if zoom is not None and not 0.0 <= zoom < 0.9:
            raise UsageError(None, "--zoom must be between 0 and 0.9")
        if zoom is not None and engine == "torch":
            raise UsageError(None, "--zoom is for --engine keras (the torch engine zooms 0.85-1.15)")
        if teacher_probs is not None and not teacher_probs.is_file():
            raise UsageError(teacher_probs, "--teacher-probs file not found")
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
            teacher_probs=str(teacher_probs) if teacher_probs else None,
            teacher_temperature=teacher_temperature,
            patience=patience,
            **({"zoom_in": zoom, "zoom_out": zoom} if zoom is not None else {}),
        )
        if engine == "torch":
            from fervideo.training.torch_engine import train_torch

            best = train_torch(cfg, out, resume=resume, epochs=epochs)
            if best.suffix != ".keras":
                typer.echo(f"best model: {best} (its .keras/.tflite export needs the train extra; then: fervideo train --out {out} --resume)", err=True)
                return 0
        else:
            best = run_train(cfg, out, resume=resume, epochs=epochs)
        if best.exists():
            export_tflite(best, out / "model.tflite")
            typer.echo(f"best model: {best} (+ {out / 'model.tflite'})", err=True)
        return 0

    _run(debug, go)


@app.command()
def evaluate(
    model: Annotated[str, typer.Option(help="Model to evaluate: fast, accurate, or a .keras/.tflite path.")],
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
