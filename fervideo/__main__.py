"""``python -m fervideo`` runs the CLI (same as the ``fervideo`` console script)."""

from fervideo.cli import app

app(prog_name="fervideo")
