"""Make the README gallery from the bundled samples with the tool itself (docs/*.png)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    docs = ROOT / "docs"
    docs.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "a.mp4"
        fv = [sys.executable, "-m", "fervideo"]
        subprocess.run([*fv, "annotate", str(ROOT / "sample_videos" / "two_astronauts.mp4"), "-o", str(out), "-q"], check=True, cwd=ROOT)
        cap = cv2.VideoCapture(str(out))
        cap.set(cv2.CAP_PROP_POS_FRAMES, 25)
        ok, frame = cap.read()
        assert ok
        cv2.imwrite(str(docs / "gallery_annotated.png"), frame, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        subprocess.run(
            [
                *fv,
                "timeline",
                str(ROOT / "sample_videos" / "astronaut_pan.mp4"),
                "--csv",
                str(Path(d) / "t.csv"),
                "--plot",
                str(docs / "gallery_timeline.png"),
                "--smooth",
                "0.3",
                "-q",
            ],
            check=True,
            cwd=ROOT,
        )
    print("wrote docs/gallery_annotated.png, docs/gallery_timeline.png")


if __name__ == "__main__":
    main()
