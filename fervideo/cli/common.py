"""What every command shares: the app, the error-to-exit-code wrapper, and the analysis options as
``Annotated`` aliases, each declared once and named like the :class:`~fervideo.options.Options`
field it fills (``--min-face`` is ``Options.min_face``), so :func:`analysis_options` is a copy.

Exit codes (README, 'Exit codes'): 0 ok; 1 some inputs of a batch failed; 2 usage error; 3 bad
input file; 4 model problem; 5 output cannot be written; 130 interrupted (Ctrl-C / SIGTERM).
"""

from __future__ import annotations

import math
import os
import signal
import traceback
from collections.abc import Callable
from dataclasses import fields
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from fervideo.errors import EXIT_INTERRUPTED, INTERRUPTED, FervideoError
from fervideo.faces import DETECTORS
from fervideo.options import Options

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Facial-expression recognition for video files: annotated video and a per-frame emotion timeline.",
    pretty_exceptions_enable=False,
    # Plain click help: the rich layout printed a '<bool>' metavar beside every flag.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

DetectorName = Enum("DetectorName", {name.replace("-", "_"): name for name in DETECTORS}, type=str)  # type: ignore[misc]


class Fmt(str, Enum):
    csv = "csv"
    parquet = "parquet"
    jsonl = "jsonl"


class Codec(str, Enum):
    h264 = "h264"
    mp4v = "mp4v"


class TtaMode(str, Enum):
    off = "off"
    flip = "flip"
    full = "full"


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

# The analysis options, one alias each (the defaults are Options' own: D below).
D = Options()
Detector = Annotated[
    DetectorName,
    typer.Option(
        help=f"Face detector: {', '.join(DETECTORS)} (blazeface: the default, fast, for close faces; retinaface: bundled, "
        "finds the small and turned faces of meetings and audiences at ~6x the detector time; yunet needs --detector-model)."
    ),
]
DetectorModel = Annotated[Path | None, typer.Option(help="Detector model file (YuNet .onnx; overrides the bundled one for others).")]
Model = Annotated[
    str | None,
    typer.Option(
        help="Emotion model: accurate (default; GPU-trained, 73.1% FER2013 in int8, ~950 faces/s on 2 cores), fast (67.5% in int8, "
        "~3,600 faces/s) or a .tflite/.keras path."
    ),
]
Device = Annotated[
    str, typer.Option(help="Where faces are classified: cpu (TFLite, default), gpu (PyTorch + CUDA, the gpu extra), auto (gpu if usable, else cpu).")
]
BatchSize = Annotated[int, typer.Option(help="Faces per classifier call (batched across frames).")]
MinFace = Annotated[int, typer.Option(help="Ignore faces smaller than this many pixels (longest box side).")]
DetectEvery = Annotated[int, typer.Option(help="Run the detector every K-th analysed frame; boxes carried by the tracker between.")]
Stride = Annotated[int, typer.Option(help="Analyse every N-th frame only; skipped frames get no rows.")]
Smooth = Annotated[
    float, typer.Option(parser=finite, help="Smooth probabilities per face with this time constant in seconds (0 = off); adds *_smoothed columns.")
]
Tta = Annotated[
    TtaMode,
    typer.Option(
        help="Test-time augmentation: off; flip (each face averaged with its mirror image: +1.5 points, 2x classifier time); "
        "full (18 views: mirror, shifts, zooms, rotations: +3 points, 18x classifier time). Figures: the model cards."
    ),
]
Precision = Annotated[
    str,
    typer.Option(
        help="Which of a tier's models the CPU runs: int8 (full-integer, ~4x faster, its own measured accuracy: models/README_int8.md) "
        "or float32 (outputs equal to Keras and to --device gpu)."
    ),
]
Align = Annotated[
    bool,
    typer.Option(
        "--align/--no-align",
        help="Roll each face upright by the detector's eye landmarks before classifying it (retinaface, blazeface, yunet, yuface; default on).",
    ),
]
Plain = Annotated[bool, typer.Option("--plain", help="Run decode, analysis and encode in one thread (reference path; slower).")]

OPTION_FIELDS = frozenset(f.name for f in fields(Options))


def analysis_options(values: dict[str, Any]) -> Options:
    """A command's parameters (its ``locals()``) -> :class:`Options`: the fields it declared, copied
    by name. Checked by ``Options.validate()`` when the Analyser or batch starts, inside :func:`run`."""
    kw = {k: v for k, v in values.items() if k in OPTION_FIELDS}
    kw = {k: v.value if isinstance(v, Enum) else str(v) if isinstance(v, Path) else v for k, v in kw.items()}
    return Options(**kw)


def run(debug: bool, fn: Callable[[], int | None], soft_interrupt: bool = False) -> None:
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
