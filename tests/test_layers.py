"""How nmt's modules depend on each other: every import goes to the same or a lower layer, with no loop between
folders, and no private name of another package is used outside the functions named for it."""

import ast
import re
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "nmt"
#: Low to high: a module may import from its own layer and the ones before it, never from a later one.
LAYERS = [
    ["nmt.errors", "nmt.files", "nmt.hardware"],
    ["nmt.checkpoint"],  # the checkpoint file as a value: no networks, no data
    ["nmt.data"],
    ["nmt.modules"],
    ["nmt.networks"],  # implement encode/decode_step; the search is above them
    ["nmt.search", "nmt.ensemble", "nmt.scoring", "nmt.metrics", "nmt.plotting", "nmt.step_guard"],
    ["nmt.engines", "nmt.export", "nmt.average"],
    ["nmt.system", "nmt.callbacks", "nmt.compare", "nmt.serve"],
    ["nmt.lightning_cli", "nmt.commands", "nmt.cli", "nmt.__main__", "nmt"],
]


def layer(module: str) -> int:
    """The layer of a module: that of the longest prefix listed."""
    best = max((p for names in LAYERS for p in names if module == p or module.startswith(p + ".")), key=len)
    return next(i for i, names in enumerate(LAYERS) if best in names)


def node(module: str) -> str:
    """A folder (``nmt.data``) for the modules of a sub-package, else the module itself (``nmt.system``)."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 and (PACKAGE / parts[1]).is_dir() else module


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        found[name] = path
    return found


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The nmt modules ``path`` imports (``from nmt.x import y`` counts nmt.x.y when y is a module)."""
    out = set()
    for item in ast.walk(ast.parse(path.read_text())):
        if isinstance(item, ast.Import):
            out |= {a.name for a in item.names if a.name.startswith("nmt")}
        elif isinstance(item, ast.ImportFrom) and item.module and item.module.startswith("nmt"):
            for alias in item.names:
                sub = f"{item.module}.{alias.name}"
                out.add(sub if sub in known else item.module)
    return out


def test_every_import_goes_down_the_layers():
    known = modules()
    upward = []
    for name, path in known.items():
        for target in imports(path, known):
            if layer(target) > layer(name):
                upward.append(f"{name} -> {target}")
    assert upward == []


def test_no_loop_between_folders():
    known = modules()
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        graph.setdefault(node(name), set()).update(node(t) for t in imports(path, known) if node(t) != node(name))
    graph.pop("nmt", None)  # the package's own __init__ re-exports nothing
    state: dict[str, int] = {}

    def visit(n: str, trail: list[str]) -> None:
        state[n] = 1
        for m in sorted(graph.get(n, ())):
            assert state.get(m) != 1, " -> ".join([*trail, n, m])
            if m not in state:
                visit(m, [*trail, n])
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n, [])


def test_the_checkpoint_module_knows_no_network_and_no_data():
    known = modules()
    assert {t for t in imports(known["nmt.checkpoint"], known)} == {"nmt.errors"}
    assert not {t for t in imports(known["nmt.networks.base"], known) if t.startswith(("nmt.search", "nmt.engines"))}


def test_no_private_name_of_another_package():
    """``grep -rn '\\._[a-z]' nmt/`` finds only nmt's own private names (self._x, our _helpers)."""
    own = set()
    for path in PACKAGE.rglob("*.py"):
        own |= set(re.findall(r"\b(?:def|class) (_[a-z]\w*)", path.read_text()))
        own |= set(re.findall(r"self\.(_[a-z]\w*)(?:: [^=]+)? = ", path.read_text()))  # attributes nmt sets
    foreign = []
    for path in PACKAGE.rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            for match in re.finditer(r"(\w+)\.(_[a-z]\w*)", code):
                if match.group(2) not in own and match.group(0) != "os._exit":  # os._exit: public, documented
                    foreign.append(f"{path.relative_to(REPO)}:{number}: {match.group(0)}")
    assert foreign == []
