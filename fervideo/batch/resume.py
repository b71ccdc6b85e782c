"""Resume: skip an input only when its outputs are complete and were made the same way.

An input is skipped when all its outputs exist, are newer than it, and were made with the same
options and model: a sidecar ``<name>.run.json`` beside the timeline records them (written last, so
a kill between the outputs and it only costs a redo). A run with other options or another model
redoes the file instead of passing off old results as new; ``--overwrite`` redoes everything.
Outputs are renamed into place only when complete, so existence means complete. The same holds for
outputs sent to a URL (:mod:`.store`): each is uploaded under a temporary name and then moved.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import astuple
from pathlib import Path
from typing import Any

from fervideo.batch import store
from fervideo.batch.options import BatchOptions
from fervideo.batch.store import Target
from fervideo.faces import CROP_MAPS
from fervideo.files import sha256_of
from fervideo.model_files import resolve_model
from fervideo.options import Options


def sidecar_for(outputs: dict[str, Target]) -> Target:
    """``<timeline>.run.json``: the options and model contents that made this input's outputs."""
    return store.with_suffix_added(outputs["timeline"], ".run.json")


def run_settings(options: Options, bo: BatchOptions) -> dict[str, Any]:
    """What decides a file's outputs: the analysis options, the model files' contents, the formats.

    Batch size, threads and queue sizes are left out: they change speed, not results (tests check
    the pipelined and plain paths and any batch split agree byte for byte).
    """
    from fervideo import __version__

    model = resolve_model(options.model, options.precision)
    # A bundled detector is identified by the version; a user's file by its content.
    det_model = Path(options.detector_model) if options.detector_model else None
    return {
        "fervideo": __version__,
        "model_sha256": _sha256(model),
        "detector": options.detector,
        "detector_model_sha256": _sha256(det_model) if det_model is not None else None,
        "min_face": options.min_face,
        "detect_every": options.detect_every,
        "stride": options.stride,
        "smooth_s": options.smooth,  # the record keeps its first name: old run folders still resume
        "detect_size": options.detect_size,
        "tta": options.tta,
        "align": options.align,
        "crop": list(astuple(CROP_MAPS[options.detector])) if options.detector in CROP_MAPS else None,
        "format": bo.fmt,
        "annotate": bo.annotate,
        "codec": bo.codec if bo.annotate else None,
        "plots": bo.plots,
    }


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def _sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:  # hashed once per run, not once per input file
        _SHA_CACHE[key] = sha256_of(path)
    return _SHA_CACHE[key]


def resume_state(
    video: Target, outputs: dict[str, Target], settings: dict[str, Any], modified: Callable[[Target], float | None] = store.modified
) -> str:
    """"missing" (no complete outputs, or older than the input), "changed" (made with other options
    or another model, or by a version that kept no record) or "same" (safe to skip). ``modified``:
    the files' times (:func:`.store.modified_times` lists a bucket once for all inputs)."""
    mtime = modified(video)
    if mtime is None:  # gone since it was found: its error row comes when it runs
        return "missing"
    for target in outputs.values():
        made = modified(target)
        if made is None or made < mtime:
            return "missing"
    try:
        recorded = json.loads(store.read_text(sidecar_for(outputs)))
    except (OSError, ValueError):
        return "changed"
    return "same" if recorded == settings else "changed"


def write_sidecar(outputs: dict[str, Target], settings: dict[str, Any]) -> None:
    """Record what made these outputs; written after them, so its presence means they are complete."""
    with store.publishing(sidecar_for(outputs)) as tmp:
        tmp.write_text(json.dumps(settings, indent=1, sort_keys=True) + "\n")
