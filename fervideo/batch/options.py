"""What a batch run was asked to do besides the analysis options, and the records that pass
between the planner, the workers and the summary: :class:`Job` in, :class:`FileRow` out."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal


@dataclass(frozen=True)
class Job:
    """One file's work: the input, its output targets by kind (local paths, or URLs: see .store)."""

    video: Path | str
    outputs: dict[str, Path | str]
    skip: bool = False  # up to date (resume): only its summary figures are read back


@dataclass
class FileRow:
    """One input's line of ``summary.csv``. ``notes`` (warnings, why it failed, what the batch
    did about it) are whole sentences; they are joined into the ``message`` column only there."""

    input: str
    status: Literal["ok", "error"] = "ok"
    notes: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)  # frames, faces, dominant emotion...: outputs.summarise
    skipped: bool = False  # up to date: read back, not run

    @classmethod
    def error(cls, video: object, message: str) -> FileRow:
        return cls(str(video), "error", [message])

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def message(self) -> str:
        return "; ".join(self.notes)

    def note(self, text: str) -> FileRow:
        self.notes.append(text)
        return self

    def as_dict(self) -> dict[str, Any]:
        return {"input": self.input, "status": self.status, "message": self.message, **self.figures}


@dataclass(frozen=True)
class FailedChunk:
    """What a chunk of a file sends back instead of its detections when the file cannot be read."""

    message: str


@dataclass
class BatchOptions:
    annotate: bool = False
    plots: bool = False
    recursive: bool = False
    overwrite: bool = False
    jobs: int = 1
    fmt: str = "csv"
    codec: str = "h264"
    quiet: bool = False
    file_timeout_s: float = 0.0  # 0: none
    chunk_s: float = 0.0  # --ray only: split files longer than this into chunks (0: never)
    settings: dict[str, Any] | None = None  # what run_settings() recorded for this run (resume)
    renamed: dict[str, str] = field(default_factory=dict)  # input -> why its outputs got a ~N name (plan fills it)
