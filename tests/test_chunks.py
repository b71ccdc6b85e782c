"""A long file analysed in chunks (``batch --ray --chunk-s``) gives the timeline one pass gives.

Chunks are analysed on their own (detection and classification: per frame) and the stateful part
(ids, smoothing) is replayed over them in file order; these tests compare the timeline rows and the
short-read warning with the single pass, on clips with several faces, ids that come back, stride
and smoothing, a truncated file, and chunks past the real end of a file whose container overcounts.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import SAMPLES, SHARED_VIDEOS, one_line_error, run_cli
from media import sample_frames, write_video

from fervideo.chunks import analyse_chunk, chunk_bounds, replay
from fervideo.errors import UsageError
from fervideo.outputs.timeline import frame_rows
from fervideo.pipeline import Analyser, Options, process_video
from fervideo.reports import named, read_problems
from fervideo.streams import open_reader
from fervideo.video import probe


def _one_pass(path: Path, analyser: Analyser) -> tuple[list[list[str]], str | None]:
    reader = open_reader(path)
    reader.retrieve_every = analyser.options.stride
    smoothing = analyser.options.smoothing
    rows = [row for r in analyser.analyse(reader, parallel=True) if r.analysed for row in frame_rows(r, smoothing)]
    return rows, "; ".join(named(path, read_problems(reader))) or None


def _chunked(path: Path, analyser: Analyser, chunk_s: float) -> tuple[list[list[str]], list[str | None], int]:
    info = probe(path)
    bounds = chunk_bounds(info.frame_count_container, info.fps_float, chunk_s)
    chunks = [analyse_chunk(path, analyser, start, stop) for start, stop in bounds]
    smoothing = analyser.options.smoothing
    rows = [row for r in replay(analyser, chunks) for row in frame_rows(r, smoothing)]
    return rows, ["; ".join(named(path, c.problems)) or None for c in chunks if c.reached_end], len(chunks)


@pytest.mark.parametrize("opts", [{}, {"stride": 3, "smooth": 0.5}, {"smooth": 2.0, "min_face": 30}])
def test_chunks_give_the_one_pass_timeline(opts: dict[str, float]) -> None:
    analyser = Analyser(Options(**opts))  # type: ignore[arg-type]
    clips = [SAMPLES / "two_astronauts.mp4", SAMPLES / "astronaut_pan.mp4"]
    if SHARED_VIDEOS.is_dir():  # several faces, an id that comes back, HEVC and MPEG-4
        clips += [SHARED_VIDEOS / n for n in ("short_hamilton_clip.mp4", "face_noface.mov", "face.avi")]
    for clip in clips:
        whole, warning = _one_pass(clip, analyser)
        assert any(r[2] != "" for r in whole), clip.name  # faces were found: the comparison means something
        duration = probe(clip).duration_s or 1.0
        for parts in (4, 2):  # each chunk decodes from the file's start: a few chunks, not many
            rows, warnings, n = _chunked(clip, analyser, duration / parts * 0.99)
            assert n in (parts, parts + 1), (clip.name, n)
            assert rows == whole, (clip.name, n)
            assert set(warnings) == {warning}, clip.name


def test_chunks_of_a_truncated_file_warn_as_one_pass_does(tmp_path: Path) -> None:
    """The container promises 120 frames; the stream stops near 60. Chunks past the real end come
    back empty, and the warning is the one a single pass gives."""
    full = write_video(tmp_path / "full.mp4", sample_frames(120), fps=25, faststart=True)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    analyser = Analyser(Options())
    report = process_video(cut, analyser, timeline=tmp_path / "cut.csv")
    assert len(report.warnings()) == 1 and "ends early" in report.warnings()[0]
    rows, warnings, n = _chunked(cut, analyser, 0.5)
    assert n == 10 and (rows, report.warnings()[0]) == _one_pass(cut, analyser)
    assert set(warnings) == {report.warnings()[0]}


def test_chunked_analysis_refuses_carried_boxes() -> None:
    analyser = Analyser(Options(detect_every=2))
    with pytest.raises(UsageError, match="detect-every 1"):
        analyse_chunk(SAMPLES / "two_astronauts.mp4", analyser, 0, None)


def test_chunk_bounds_cover_the_file_and_leave_the_end_open() -> None:
    assert chunk_bounds(100, 25.0, 1.0) == [(0, 25), (25, 50), (50, 75), (75, None)]
    assert chunk_bounds(0, 25.0, 1.0) == [(0, None)]  # no count in the container: one chunk
    assert chunk_bounds(10, 29.97, 60.0) == [(0, None)]


def test_chunk_option_errors(tmp_path: Path) -> None:
    """--chunk-s is for clusters and for timelines: one line and exit 2 otherwise, before any work."""
    for extra, needle in (((), "add --ray"), (("--ray", "local", "--annotate"), "--annotate"), (("--ray", "local", "--detect-every", "2"), "--detect-every 1")):
        one_line_error(run_cli("batch", str(SAMPLES), "--out", str(tmp_path / "o"), "--chunk-s", "5", *extra), 2, needle)
    assert not (tmp_path / "o").exists()

