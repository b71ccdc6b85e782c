"""What a batch run was asked to do, besides the analysis options."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# One file's work: the input, its output targets by kind (local paths, or URLs: see .store), and
# whether it is skipped (up to date).
Job = tuple[Path | str, dict[str, Path | str], bool]


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
