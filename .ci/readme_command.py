"""Print a command from README.md: the fenced block after the marker ``<!-- ci: NAME -->``.

.ci/run runs the README's two fresh-machine commands through this, so what a newcomer copies and
what CI runs cannot drift apart (issue 22); tests/test_first_use.py checks both markers exist.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def command(name: str, text: str | None = None) -> str:
    text = README.read_text(encoding="utf-8") if text is None else text
    m = re.search(rf"<!-- ci: {re.escape(name)} -->\s*```bash\n(.*?)\n```", text, re.S)
    if m is None:
        raise SystemExit(f"README.md: no ```bash block after <!-- ci: {name} -->")
    return m.group(1).strip()


if __name__ == "__main__":
    print(command(sys.argv[1]))
