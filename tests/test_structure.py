"""The layout's promises (issue 26), checked so they cannot rot: no import cycle between the
package's modules (function-level imports included), one definition of each network with weights
mapped by layer name, one parser of architecture names, and option fields named like their flags."""

from __future__ import annotations

import ast
import dataclasses
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, need_extra, run_cli

from fervideo.emotions.specs import ARCHITECTURES, ArchSpec, parse_arch, vgg_lite_layers
from fervideo.errors import UsageError
from fervideo.options import TUNING_FIELDS, Options


def _import_graph() -> dict[str, set[str]]:
    """fervideo module -> the fervideo modules it imports anywhere in its text (a submodule's import
    of its own package's ``__init__`` excepted: Python runs the package first)."""
    pkg_root = ROOT / "fervideo"
    mods = {}
    for p in pkg_root.rglob("*.py"):
        name = ".".join(p.relative_to(ROOT).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = p
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for t in names:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != m and not m.startswith(t + "."):
                    graph[m].add(t)
    return graph


def test_no_import_cycle_between_modules() -> None:
    graph = _import_graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(u: str, path: list[str]) -> None:
        state[u] = 1
        for v in sorted(graph[u]):
            if state.get(v) == 1:
                cycles.append(path[path.index(v) :] + [u, v] if v in path else [u, v])
            elif v not in state:
                visit(v, [*path, u])
        state[u] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])
    assert not cycles, cycles
    assert "fervideo.batch" not in {t.rpartition(".")[0] for t in graph["fervideo.still"]}  # sniffing lives in video


def test_architecture_names_have_one_parser() -> None:
    assert parse_arch("vgg_lite") == ArchSpec("vgg_lite", 20) == parse_arch("vgg_lite_w20")  # a registry name and a model's own name
    assert parse_arch("vgg_lite_w48").width == 48
    assert all(parse_arch(spec.name) == spec for spec in ARCHITECTURES.values())
    with pytest.raises(UsageError, match="choose one of"):
        parse_arch("vgglite")
    sources = [p.read_text() for p in (ROOT / "fervideo").rglob("*.py") if p.name != "specs.py"]
    assert not [s for s in sources if "vgg_lite_w(" in s], "architecture names are parsed only in fervideo/emotions/specs.py"


def test_keras_and_torch_builds_name_the_layers_the_spec_lists(tmp_path: Path) -> None:
    """One definition: both frameworks build vgg_lite from its spec, the layers carry the spec's
    names, and a saved .keras file reaches PyTorch by those names (probabilities equal to 1e-5)."""
    keras = need_extra("keras", "train")
    need_extra("torch", "gpu")
    need_extra("h5py", "gpu")
    from fervideo.emotions.architectures import build
    from fervideo.emotions.torch_net import build_vgg_lite, keras_weights, load_keras_weights
    from fervideo.training.train import float32_model

    spec = ArchSpec("vgg_lite", 8)
    weighted = [layer.name for layer in vgg_lite_layers(spec) if layer.kind in ("conv", "bn", "dense")]
    model = build(spec.name)
    assert [layer.name for layer in model.layers if layer.weights] == weighted
    net = build_vgg_lite(spec)
    assert [n for n, m in net.features.named_children() if any(True for _ in m.parameters())] + ["probs"] == weighted
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 0.2, w.shape).astype(np.float32) + (1.0 if "variance" in w.path else 0.0) for w in model.weights])
    path = tmp_path / "w8.keras"
    model.save(path)
    assert json.loads(zipfile.ZipFile(path).read("config.json"))["config"]["name"] == "vgg_lite_w8"
    faces = rng.integers(0, 256, (16, 48, 48)).astype(np.float32)
    ref = np.asarray(model(faces[..., None], training=False))
    import torch

    torch_net = load_keras_weights(path)
    with torch.inference_mode():
        got = torch.softmax(torch_net(torch.from_numpy(faces)[:, None]), 1).numpy()
    assert np.abs(got - ref).max() < 1e-5
    back = float32_model(spec.name, keras_weights(torch_net))  # and back, by name
    assert np.abs(np.asarray(back(faces[..., None], training=False)) - ref).max() < 1e-5
    del keras


def test_options_fields_are_the_flags() -> None:
    """Every Options field but the tuning ones is a flag of the same name on `timeline`, and an
    error names the flag, or the field when there is none."""
    proc = run_cli("timeline", "--help")
    flags = {f.name for f in dataclasses.fields(Options)} - set(TUNING_FIELDS)
    for name in flags:
        assert f"--{name.replace('_', '-')}" in proc.stdout, name
    with pytest.raises(UsageError, match=r"--min-face"):
        Options(min_face=-1).validate()
    with pytest.raises(UsageError, match=r"Options\.batch_frames must be at least 1"):
        Options(batch_frames=0).validate()
    with pytest.raises(UsageError, match=r"--smooth"):
        Options(smooth=float("nan")).validate()
    bad = run_cli("timeline", "x.mp4", "--tta", "twice")
    assert bad.returncode == 2 and "twice" in bad.stderr


def test_every_package_is_in_the_wheel() -> None:
    """pyproject lists the packages by hand (one is mapped from models/): a new sub-package missing
    there installs a `fervideo` command that cannot import itself."""
    tomllib = pytest.importorskip("tomllib", reason="Python 3.11+ reads pyproject.toml without a package")
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "fervideo").rglob("__init__.py")}
    assert found <= listed, found - listed
