"""What a run over one video found besides its rows: frames lost, a short stream, outputs that lost
something, as data; turned into text only at the edges (the CLI's warning lines, a batch summary row).

The problems carry no file name: the edge that shows them knows what to call the file (the path a
user typed, or the URL a batch worker downloaded it from), so no message is ever patched or parsed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from fervideo.frames import VideoInfo
from fervideo.video import DAMAGE_REORDER, FrameReader


@dataclass(frozen=True)
class DamagedFrames:
    """Stretches that could not be decoded mid-stream: (first frame, count, first time, last time)."""

    lost: tuple[tuple[int, int, float, float], ...]

    def text(self) -> str:
        spans = ", ".join(f"frames {a}-{a + n - 1} ({t0:.2f}-{t1:.2f} s)" if n > 1 else f"frame {a} ({t0:.2f} s)" for a, n, t0, t1 in self.lost[:5])
        more = f" and {len(self.lost) - 5} more stretches" if len(self.lost) > 5 else ""
        return (
            f"damaged data: {sum(n for _, n, _, _ in self.lost)} frames could not be decoded and are missing from the outputs: {spans}{more}. "
            "Decoding went on after them, and frames keep the source's numbers, so the timeline shows the gap"
        )


@dataclass(frozen=True)
class ShortRead:
    """Fewer frames than the container says: the file was cut ("truncated") or its count is off ("miscount")."""

    kind: Literal["truncated", "miscount"]
    decoded: int
    container: int

    def text(self) -> str:
        if self.kind == "truncated":
            return (
                f"video ends early: {self.decoded} frames decoded, container says {self.container} "
                "(truncated or damaged file); outputs cover the decoded frames"
            )
        return (
            f"container says {self.container} frames but the stream holds {self.decoded}, "
            "decoded to its end (the container's count is off; nothing is missing)"
        )


ReadProblem = DamagedFrames | ShortRead


def read_problems(reader: FrameReader) -> list[ReadProblem]:
    """What decoding found, once the reader has finished.

    A truncated file's last packet is cut too, and the decoder still hands out the frames it held:
    a stretch lost in the last few frames of a truncated file is the truncation (the ShortRead), not
    damage decoding went past."""
    found: list[ReadProblem] = []
    short = reader.short_read()
    lost = reader.lost
    if short == "truncated":
        lost = [s for s in lost if s[0] + s[1] < reader.frames_read - DAMAGE_REORDER]
    if lost:
        found.append(DamagedFrames(tuple(lost)))
    if short is not None:
        found.append(ShortRead(short, reader.frames_read - reader.frames_lost, reader.info.frame_count_container))  # type: ignore[arg-type]
    return found


def named(name: object, problems: list[ReadProblem]) -> list[str]:
    """The problems as warning lines about the file called ``name``."""
    return [f"{name}: {p.text()}" for p in problems]


@dataclass
class VideoReport:
    """What one run over one video produced, for the summary and the closing message."""

    info: VideoInfo
    frames: int = 0
    analysed_frames: int = 0
    frames_with_face: int = 0
    face_ids: set[int] = field(default_factory=set)
    faces_classified: int = 0
    problems: list[ReadProblem] = field(default_factory=list)
    output_notes: list[str] = field(default_factory=list)  # "<output>: what it could not keep" (the writer's notes)

    @property
    def truncated(self) -> bool:
        return any(isinstance(p, ShortRead) and p.kind == "truncated" for p in self.problems)

    def warnings(self, name: object = None) -> list[str]:
        """Every warning line, the input called ``name`` (default: the path it was read from)."""
        return self.output_notes + named(self.info.path if name is None else name, self.problems)
