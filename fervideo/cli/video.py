"""The commands that analyse media: ``annotate``, ``timeline``, ``batch``, ``image``, ``live``, ``info``.

Each declares its analysis options with the aliases of :mod:`.common` (defaults: ``Options``'
own) and hands them over as one :class:`~fervideo.options.Options`; heavy imports (pandas,
matplotlib, the batch and live modules) happen inside the commands, so they start in well under a second.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from fervideo.cli.common import (
    Align,
    BatchSize,
    Codec,
    D,
    Debug,
    DetectEvery,
    Detector,
    DetectorModel,
    DetectorName,
    Device,
    Fmt,
    MinFace,
    Model,
    Plain,
    Precision,
    Quiet,
    Smooth,
    Stride,
    Tta,
    TtaMode,
    analysis_options,
    app,
    finite,
    run,
)
from fervideo.options import Options

VideoArg = Annotated[Path, typer.Argument(help="Input video file.")]
DETECTOR, TTA = DetectorName(D.detector), TtaMode(D.tta)


def _progress(total: int | None, desc: str, quiet: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total or None, desc=desc, unit="frame", disable=quiet, leave=False, dynamic_ncols=True)


def _analyse_one(video: Path, opts: Options, quiet: bool, csv_out: Path | None, fmt: str, annotated: Path | None, codec: str, plot: Path | None = None) -> Any:
    from fervideo.files import check_input_file, check_output_path
    from fervideo.pipeline import Analyser, process_video
    from fervideo.video import check_annotated_path

    video = check_input_file(video)
    if annotated is not None:
        check_annotated_path(annotated)
    for out in (csv_out, annotated, plot):
        if out is not None:
            check_output_path(out, [video])
    analyser = Analyser(opts)
    with _progress(None, video.name, quiet) as bar:

        def size_bar(info: Any) -> None:
            bar.total = info.frame_count_container or None  # a hint: the container may miscount
            bar.refresh()

        report = process_video(video, analyser, timeline=csv_out, fmt=fmt, annotated=annotated, codec=codec, progress=bar.update, on_start=size_bar)
    for w in report.warnings():
        typer.echo(f"fervideo: warning: {w}", err=True)
    if plot is not None and csv_out is not None:
        from fervideo.outputs import plot_timeline, read_timeline

        plot_timeline(read_timeline(csv_out), plot, title=video.name, smoothed=opts.smoothing)
    return report


@app.command()
def annotate(
    video: VideoArg,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Annotated video: .mp4, .mov, .mkv or .avi (default: VIDEO + .annotated.mp4).")] = None,
    csv: Annotated[Path | None, typer.Option(help="Also write the timeline here.")] = None,
    codec: Annotated[Codec, typer.Option(help="h264 via PyAV with the input's audio copied (default), or mp4v via OpenCV (no audio).")] = Codec.h264,
    detector: Detector = DETECTOR,
    detector_model: DetectorModel = None,
    model: Model = None,
    device: Device = D.device,
    batch_size: BatchSize = D.batch_size,
    min_face: MinFace = D.min_face,
    detect_every: DetectEvery = D.detect_every,
    smooth: Smooth = D.smooth,
    tta: Tta = TTA,
    align: Align = D.align,
    precision: Precision = D.precision,
    plain: Plain = D.plain,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Write a copy of VIDEO with a box, id, emotion and probability bars on every face."""
    opts = analysis_options(locals())

    def go() -> int:
        out = output or video.with_name(video.stem + ".annotated.mp4")
        r = _analyse_one(video, opts, quiet, csv, "csv", out, codec.value)
        typer.echo(f"{out}: {r.frames} frames, {r.frames_with_face} with a face, {len(r.face_ids)} face id(s)", err=True)
        return 0

    run(debug, go, soft_interrupt=True)


@app.command()
def timeline(
    video: VideoArg,
    csv: Annotated[Path | None, typer.Option("--csv", "-o", help="Timeline output (default: VIDEO stem + .csv/.parquet/.jsonl).")] = None,
    format: Annotated[Fmt, typer.Option("--format", help="csv, parquet or jsonl; same columns.")] = Fmt.csv,
    plot: Annotated[Path | None, typer.Option(help="Also save a PNG plot of the probabilities over time.")] = None,
    detector: Detector = DETECTOR,
    detector_model: DetectorModel = None,
    model: Model = None,
    device: Device = D.device,
    batch_size: BatchSize = D.batch_size,
    min_face: MinFace = D.min_face,
    detect_every: DetectEvery = D.detect_every,
    stride: Stride = D.stride,
    smooth: Smooth = D.smooth,
    tta: Tta = TTA,
    align: Align = D.align,
    precision: Precision = D.precision,
    plain: Plain = D.plain,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Write the per-frame emotion timeline of VIDEO (no video output)."""
    opts = analysis_options(locals())

    def go() -> int:
        out = csv or video.with_name(f"{video.stem}.{format.value}")
        r = _analyse_one(video, opts, quiet, out, format.value, None, "h264", plot)
        typer.echo(f"{out}: {r.analysed_frames} frames analysed, {r.frames_with_face} with a face, {len(r.face_ids)} face id(s)", err=True)
        return 0

    run(debug, go, soft_interrupt=True)


@app.command()
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
    detector: Detector = DETECTOR,
    detector_model: DetectorModel = None,
    model: Model = None,
    device: Device = D.device,
    batch_size: BatchSize = D.batch_size,
    min_face: MinFace = D.min_face,
    detect_every: DetectEvery = D.detect_every,
    stride: Stride = D.stride,
    smooth: Smooth = D.smooth,
    tta: Tta = TTA,
    align: Align = D.align,
    precision: Precision = D.precision,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Analyse every video in DIRECTORY; broken files are reported in OUT/summary.csv, never fatal."""
    opts = analysis_options(locals())

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
            typer.echo(f"fervideo: error: {r.input}: {r.message}", err=True)
        ok = len(result.rows) - len(result.failed)
        typer.echo(f"{result.summary}: {ok} ok, {len(result.failed)} failed of {len(result.rows)} videos", err=True)
        return result.exit_code

    run(debug, go, soft_interrupt=True)


@app.command()
def image(
    images: Annotated[list[Path], typer.Argument(help="Still images (jpg, png, ...).")],
    csv: Annotated[Path | None, typer.Option(help="Also write the table as CSV.")] = None,
    annotate_dir: Annotated[Path | None, typer.Option(help="Write annotated copies of the images here.")] = None,
    detector: Detector = DETECTOR,
    detector_model: DetectorModel = None,
    model: Model = None,
    device: Device = D.device,
    min_face: MinFace = D.min_face,
    tta: Tta = TTA,
    align: Align = D.align,
    precision: Precision = D.precision,
    debug: Debug = False,
) -> None:
    """Faces and emotion probabilities for still images, printed as a table."""
    opts = analysis_options(locals())

    def go() -> int:
        from fervideo.still import analyse_images, format_table

        res = analyse_images(images, opts, csv, annotate_dir)
        for e in res.errors:
            typer.echo(f"fervideo: error: {e}", err=True)
        if res.rows:  # nothing readable: the error lines say it all, no empty table under them
            typer.echo(format_table(res.rows))
        return res.exit_code

    run(debug, go)


@app.command()
def live(
    source: Annotated[str, typer.Option(help="Camera index (0), stream URL or video file.")] = "0",
    window: Annotated[
        bool, typer.Option("--window/--no-window", help="Show a window (pip install 'fervideo[live]' for pygame); --no-window prints timeline rows.")
    ] = True,
    max_frames: Annotated[int, typer.Option(help="Stop after this many frames (0 = until the source ends or q/Ctrl-C).")] = 0,
    fast: Annotated[bool, typer.Option("--fast", help="Play a file as fast as it can be analysed, not at its own speed.")] = False,
    detector: Detector = DETECTOR,
    detector_model: DetectorModel = None,
    model: Model = None,
    device: Device = D.device,
    min_face: MinFace = D.min_face,
    smooth: Smooth = D.smooth,
    tta: Tta = TTA,
    align: Align = D.align,
    precision: Precision = D.precision,
    debug: Debug = False,
) -> None:
    """Real-time view of a camera, stream or file with fps shown; --no-window prints CSV rows."""
    opts = analysis_options(locals())

    def go() -> int:
        from fervideo.live import run_live

        r = run_live(source, opts, show=window, max_frames=max_frames, fast=fast, rows_out=sys.stdout)
        typer.echo(f"fervideo live: {r.frames} frames, {r.fps:.1f} fps", err=True)
        return 0

    run(debug, go)


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

    run(debug, go)
