"""The package's layers, as the README states them, read from every import with ``ast``.

1. Imports run one way, lowest first: errors, resources < runtime < resolvers (layer 1); video (2);
   flow, models (3); data, weights (4); inference (5); engine (6); train, evaluation, features,
   report, frames (7); the entry points (``train.py``, ``eval.py``, ``extract.py``, ``i3d_train/predict.py``)
   on top. A module imports from its own package or from a lower rank, never up or sideways.
2. ``features/`` and ``inference/`` never import Lightning, ``engine/``, ``train/`` or ``evaluation/``,
   and nothing that ``extract.py`` or ``python -m i3d_train.predict`` imports, however indirectly, imports
   Lightning.
3. No module uses another module's private name (``from x import _y``, ``x._y``, ``obj._y``).

Imports inside functions count too: a lazy import still ties the layers together.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "i3d_train"

# rank of each part; a module may import its own part or any part of a lower rank
RANK = {
    "errors": 0,
    "resources": 0,
    "runtime": 1,
    "resolvers": 2,
    "__init__": 2.5,  # i3d_train/__init__.py registers the resolvers
    "video": 3,
    "flow": 4,
    "models": 4,
    "data": 5,
    "weights": 5,
    "inference": 6,
    "engine": 7,
    "train": 8,
    "evaluation": 8,
    "features": 8,
    "report": 8,
    "frames": 8,  # python -m i3d_train.frames: video/, runtime/ and data/frames.py below it
    "predict": 9,  # i3d_train/predict.py: the entry of `python -m i3d_train.predict`
    "<entry>": 9,  # train.py, eval.py, extract.py
}
ENTRIES = ("train.py", "eval.py", "extract.py")
LIGHTNING = ("pytorch_lightning", "lightning", "lightning_fabric")
NO_LIGHTNING_PARTS = ("features", "inference")
FORBIDDEN_FOR_NO_LIGHTNING = ("engine", "train", "evaluation")


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def part_of(module: str) -> str:
    """``i3d_train.engine.classifier`` -> ``engine``; ``i3d_train`` -> ``__init__``; ``train`` (train.py) -> ``<entry>``."""
    parts = module.split(".")
    if parts[0] != "i3d_train":
        return "<entry>"
    return parts[1] if len(parts) > 1 else "__init__"


def sources() -> dict[str, tuple[Path, ast.Module]]:
    files = sorted(PKG.rglob("*.py")) + [ROOT / e for e in ENTRIES]
    return {module_name(f): (f, ast.parse(f.read_text(), str(f))) for f in files}


def imports(tree: ast.Module) -> list[tuple[int, str, list[str]]]:
    """``(line, module, names)`` of every import in the file, at any depth (a relative import as
    ``.<level>:<module>``, which :func:`relative_imports` refuses)."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.ImportFrom):
            out.append((node.lineno, f".{node.level}:{node.module or ''}", [a.name for a in node.names]))
    return out


def relative_imports(srcs: dict[str, tuple[Path, ast.Module]]) -> list[str]:
    """Every import names its module in full, so that the layer rules see it."""
    return [
        f"{path.relative_to(ROOT)}:{line}: relative import {module}"
        for path, tree in srcs.values()
        for line, module, _ in imports(tree)
        if module.startswith(".")
    ]


def project_targets(module: str, names: list[str], known: set[str]) -> list[str]:
    """The project modules an import reaches: ``from i3d_train.flow import store`` reaches the submodule."""
    if not module.startswith("i3d_train"):
        return []
    subs = [f"{module}.{n}" for n in names if f"{module}.{n}" in known]
    return subs or [module]


def layer_violations(srcs: dict[str, tuple[Path, ast.Module]]) -> list[str]:
    known = set(srcs)
    bad = []
    for name, (path, tree) in srcs.items():
        own = part_of(name)
        for line, module, names in imports(tree):
            for target in project_targets(module, names, known):
                other = part_of(target)
                if other != own and RANK[other] >= RANK[own]:
                    bad.append(
                        f"{path.relative_to(ROOT)}:{line}: {own} (rank {RANK[own]}) imports {target} (rank {RANK[other]})"
                    )
    return bad


def lightning_violations(srcs: dict[str, tuple[Path, ast.Module]]) -> list[str]:
    bad = []
    for name, (path, tree) in srcs.items():
        if part_of(name) not in NO_LIGHTNING_PARTS:
            continue
        for line, module, _ in imports(tree):
            top = module.split(".")[0]
            if top in LIGHTNING or (top == "i3d_train" and part_of(module) in FORBIDDEN_FOR_NO_LIGHTNING):
                bad.append(f"{path.relative_to(ROOT)}:{line}: {part_of(name)}/ imports {module}")
    return bad


def closure(start: str, srcs: dict[str, tuple[Path, ast.Module]]) -> set[str]:
    """Every project module ``start`` imports, directly or not (packages' ``__init__`` included)."""
    known = set(srcs)
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        if m in seen or m not in srcs:
            continue
        seen.add(m)
        parts = m.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # importing a.b.c runs a and a.b
        for _, module, names in imports(srcs[m][1]):
            todo += project_targets(module, names, known)
    return seen


def transitive_lightning(start: str, srcs: dict[str, tuple[Path, ast.Module]]) -> list[str]:
    return [
        f"{start} -> {m} imports {module}"
        for m in sorted(closure(start, srcs))
        for _, module, _ in imports(srcs[m][1])
        if module.split(".")[0] in LIGHTNING
    ]


def private_violations(srcs: dict[str, tuple[Path, ast.Module]]) -> list[str]:
    bad = []
    for path, tree in srcs.values():
        for node in ast.walk(tree):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("i3d_train"):
                for a in node.names:
                    if a.name.startswith("_") and not a.name.startswith("__"):
                        bad.append(f"{where}: imports the private {node.module}.{a.name}")
            elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                owner = node.value
                if not (isinstance(owner, ast.Name) and owner.id in ("self", "cls")):
                    bad.append(f"{where}: uses the private attribute {ast.unparse(node)}")
    return bad


@pytest.fixture(scope="module")
def srcs():
    return sources()


def test_every_part_has_a_rank(srcs):
    assert {part_of(m) for m in srcs} <= set(RANK), sorted({part_of(m) for m in srcs} - set(RANK))


def test_imports_run_one_way(srcs):
    assert layer_violations(srcs) == []


def test_every_import_names_its_module_in_full(srcs):
    assert relative_imports(srcs) == []


def test_features_and_inference_never_import_lightning_or_the_training_side(srcs):
    assert lightning_violations(srcs) == []


def test_commands_without_training_never_reach_lightning(srcs):
    """``extract.py``, ``python -m i3d_train.predict`` and every module of ``features/`` and ``inference/``:
    nothing they import, however indirectly, imports Lightning."""
    starts = ["extract", "i3d_train.predict"] + [m for m in srcs if part_of(m) in NO_LIGHTNING_PARTS]
    assert len(starts) > 8
    assert [v for start in starts for v in transitive_lightning(start, srcs)] == []


def test_no_module_uses_another_modules_private_names(srcs):
    assert private_violations(srcs) == []


# Each rule must catch the violations that were there before the move (issue 25), put back one at a time.
REINTRODUCED = {
    "models imports weights (the package cycle)": (
        "i3d_train/models/inflate.py",
        "from i3d_train.weights.registry import download_command\n",
        layer_violations,
    ),
    "evaluation imports the training entry": (
        "i3d_train/evaluation/run.py",
        "from i3d_train.train.run import train\n",
        layer_violations,
    ),
    "flow imports a layer above it (data)": (
        "i3d_train/flow/parallel.py",
        "from i3d_train.data.splits import read_lines\n",
        layer_violations,
    ),
    "engine imports the transfer protocols": (
        "i3d_train/engine/classifier.py",
        "from i3d_train.train.transfer import apply_protocol\n",
        layer_violations,
    ),
    "features imports Lightning": (
        "i3d_train/features/pipeline.py",
        "import pytorch_lightning as pl\n",
        lightning_violations,
    ),
    "features imports engine": (
        "i3d_train/features/run.py",
        "from i3d_train.engine.metrics import video_metrics\n",
        lightning_violations,
    ),
    "a private name across modules": (
        "i3d_train/features/summary.py",
        "from i3d_train.runtime.atomic import _remove\n",
        private_violations,
    ),
    "a relative import (which the other rules would not see)": (
        "i3d_train/models/inflate.py",
        "from ..weights.registry import download_command\n",
        relative_imports,
    ),
    "a private method of another object": (
        "i3d_train/evaluation/testing.py",
        "def f(datamodule):\n    return datamodule._dataset\n",
        private_violations,
    ),
}


@pytest.mark.parametrize("case", sorted(REINTRODUCED))
def test_each_rule_catches_a_reintroduced_violation(srcs, case):
    rel, line, check = REINTRODUCED[case]
    path = ROOT / rel
    name = module_name(path)
    mutated = dict(srcs)
    mutated[name] = (path, ast.parse(path.read_text() + "\n" + line))
    assert check(srcs) == []
    found = check(mutated)
    assert len(found) == 1 and found[0].startswith(rel), found


def test_a_lightning_import_deep_under_extract_is_found(srcs):
    """``extract.py`` -> features.run -> ... -> video.reader: Lightning imported at the bottom is found."""
    path = PKG / "video" / "reader.py"
    mutated = dict(srcs)
    mutated["i3d_train.video.reader"] = (path, ast.parse(path.read_text() + "\nimport pytorch_lightning\n"))
    assert transitive_lightning("extract", srcs) == []
    assert transitive_lightning("extract", mutated) == ["extract -> i3d_train.video.reader imports pytorch_lightning"]


def referenced_paths() -> list[tuple[str, str]]:
    """``(where, reference)`` of every repository file (``i3d_train/x.py``, ``tests/x.py``, ...) and every
    dotted ``i3d_train.x.y`` name in the package's, the configs', the benchmarks' and the docs' text."""
    import re

    refs = []
    files = [*PKG.rglob("*.py"), *(ROOT / "conf").rglob("*.yaml"), *(ROOT / "benchmarks").glob("*.py")]
    files += [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "conf").rglob("*.yaml")]
    for f in files:
        text = f.read_text()
        for m in re.finditer(
            r"(?<![\w/.])((?:i3d_train|tests|benchmarks|conf|docs)/[\w/.-]*\w\.(?:py|yaml|md|txt))", text
        ):
            refs.append((str(f.relative_to(ROOT)), m.group(1)))
        for m in re.finditer(r"(?<![\w./-])(i3d_train(?:\.\w+)+)", text):
            refs.append((str(f.relative_to(ROOT)), m.group(1)))
    return refs


def resolves(ref: str) -> bool:
    """A file that exists, or a module whose remaining dotted parts are its attributes (a function, a
    class and its members): ``i3d_train.flow.store.read_flow`` resolves, ``i3d_train.flow.extract`` not."""
    import importlib

    if "/" in ref:
        return (ROOT / ref).exists()
    parts = ref.split(".")
    for i in range(len(parts), 0, -1):
        stem = ROOT.joinpath(*parts[:i])
        if stem.with_suffix(".py").is_file() or (stem / "__init__.py").is_file():
            obj = importlib.import_module(".".join(parts[:i]))
            for attr in parts[i:]:
                if not hasattr(obj, attr):
                    return False
                obj = getattr(obj, attr)
            return True
    return False


def test_every_file_and_module_the_code_and_docs_name_exists():
    """Docstrings, comments, configs, the README and the docs name files and modules (and their
    functions and classes) of this repository that exist (the old flat layout's names only in the table
    that maps them, ``MOVED_TARGETS``)."""
    from i3d_train.engine.run_config import MOVED_TARGETS

    missing = [f"{where}: {ref}" for where, ref in referenced_paths() if not resolves(ref) and ref not in MOVED_TARGETS]
    assert missing == []


def test_a_removed_module_inside_an_existing_package_is_found():
    assert resolves("i3d_train.flow.store.read_flow") and resolves("i3d_train.features.run")
    assert not resolves("i3d_train.flow.extract") and not resolves("i3d_train.data.labels")
    assert not resolves("i3d_train.flow.store.no_such_function") and not resolves("i3d_train/pipeline.py")
