"""The architecture, checked: strict layers, no import cycles, no use of another package's private names.

Layers (DESIGN.md, STYLE.md "layers you can see"), lowest first. A module may import modules of its own
rank or lower, never higher:

    errors < syntax < secrets, secretvalue, fsutil < proc < backends < engine < sources < config < notify, health < operations < cli

Inside ``engine`` and ``operations`` the folders are layers too (:data:`SUB_RANK`): the engine's format <
fs < backup, restore < prune < check; operations' maintenance < backup < restore < export, inspect <
observe < schedule < demo.

The ranks are strict on purpose: they describe the tree as it is, so a new upward import fails here
(:func:`test_a_deliberate_upward_import_fails` proves that the check can fail). Exceptions are listed in
:data:`ALLOWED` with the reason; keep that list short.

Imports are read from the source with :mod:`ast` (every ``import`` statement, also inside functions and
``if TYPE_CHECKING:`` blocks), so that a cycle cannot hide in a function-level import.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "safehold"

#: Rank of each top-level module or package of safehold (``safehold.<name>``).
RANK: dict[str, int] = {
    "__init__": 0,  # __version__ only
    "errors": 0,
    "syntax": 1,  # depends on errors only
    "secrets": 2,
    "secretvalue": 2,  # reading a secret without pydantic (secrets re-uses it)
    "fsutil": 2,
    "proc": 3,
    "backends": 10,
    "engine": 20,
    "sources": 30,
    "config": 40,
    "notify": 45,
    "health": 45,
    "operations": 50,
    "cli": 60,
    "__main__": 60,
}

#: Inside a layer, its packages have ranks too (the folders show the layers: DESIGN.md "Layers"). A module
#: directly in the layer's folder (``engine/helper.py``) has the rank given for ``""``.
SUB_RANK: dict[str, dict[str, int]] = {
    "engine": {
        "": 0,  # helper processes, progress, memtune, util: shared by every part of the engine
        "format": 1,  # the repository's files: crypto, keys, blobs, packs, index, trees, snapshots, locks
        "fs": 2,  # the file system (metadata into and out of tree nodes)
        "backup": 3,
        "restore": 3,
        "prune": 4,  # rewrites packs with the backup's writer
        "check": 5,  # reports prune's leftovers; repairs write with the backup's writer
    },
    "operations": {
        "": 0,  # the package itself (a docstring)
        "maintenance": 1,  # forget, prune, repair, copy
        "backup": 2,  # a profile backup ends with off-site copies (maintenance)
        "restore": 3,  # a restore plans with the backup's component reader and takes safety snapshots
        "export": 4,
        "inspect": 4,
        "observe": 5,  # drills restore; status and reports read results
        "schedule": 6,  # jobs are recorded in the audit log (observe)
        "demo": 7,  # the tour uses everything
    },
}
#: (importing module prefix, imported module prefix): why the upward import is allowed.
ALLOWED: dict[tuple[str, str], str] = {}
#: Import cycles that exist for now, with the reason.
ALLOWED_CYCLES: dict[frozenset[str], str] = {}
#: Importing modules allowed to use another package's private names for now, with the reason.
ALLOWED_PRIVATE: dict[str, str] = {}


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name of the importing file
    target: str  # dotted name of the imported module
    names: tuple[str, ...]  # names imported from it (``from target import a, b``); empty for ``import``
    line: int


def module_name(path: Path, root: Path = SRC) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = importer.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(path: Path, modules: set[str], root: Path = SRC) -> list[Import]:
    """Every import of a safehold module in the file ``path`` (``from pkg import mod`` counts as an import
    of ``pkg.mod`` when that is a module)."""
    me = module_name(path, root)
    out: list[Import] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [
                Import(me, a.name, (), node.lineno) for a in node.names if a.name.split(".")[0] == PACKAGE
            ]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(me, path.name == "__init__.py", node)
            if target.split(".")[0] != PACKAGE:
                continue
            plain = []
            for a in node.names:
                if f"{target}.{a.name}" in modules:
                    out.append(Import(me, f"{target}.{a.name}", (), node.lineno))
                else:
                    plain.append(a.name)
            if plain:
                out.append(Import(me, target, tuple(plain), node.lineno))
    return out


def all_imports(root: Path = SRC) -> tuple[set[str], list[Import]]:
    files = sorted((root / PACKAGE).rglob("*.py"))
    modules = {module_name(p, root) for p in files}
    return modules, [i for p in files for i in imports_of(p, modules, root)]


def rank_of(module: str) -> int:
    parts = module.split(".")
    key = parts[1] if len(parts) > 1 else "__init__"
    if key not in RANK:
        raise AssertionError(f"{module}: no layer rank for safehold.{key} (add it to RANK)")
    return RANK[key]


def upward_imports(imports: Iterable[Import], allowed: dict[tuple[str, str], str] = ALLOWED) -> list[str]:
    problems = []
    for imp in imports:
        if rank_of(imp.target) <= rank_of(imp.importer):
            continue
        if any((imp.importer + ".").startswith(a) and imp.target.startswith(b) for a, b in allowed):
            continue
        problems.append(f"{imp.importer}:{imp.line} imports {imp.target} (an upward import)")
    return problems


def sub_rank_of(module: str) -> tuple[str, int] | None:
    """(layer, rank) of a module inside a layer that has sub-ranks, else None."""
    parts = module.split(".")
    if len(parts) < 2 or parts[1] not in SUB_RANK:
        return None
    table = SUB_RANK[parts[1]]
    key = parts[2] if len(parts) > 2 and parts[2] in table else ""
    if len(parts) > 3 and parts[2] not in table:
        raise AssertionError(f"{module}: no rank for safehold.{parts[1]}.{parts[2]} (add it to SUB_RANK)")
    return parts[1], table[key]


def upward_sub_imports(imports: Iterable[Import]) -> list[str]:
    """Imports from a lower package of a layer to a higher one (``engine.format`` importing ``engine.backup``)."""
    problems = []
    for imp in imports:
        me, it = sub_rank_of(imp.importer), sub_rank_of(imp.target)
        if me and it and me[0] == it[0] and it[1] > me[1]:
            problems.append(f"{imp.importer}:{imp.line} imports {imp.target} (upward inside {me[0]})")
    return problems


def cycles(modules: set[str], imports: Iterable[Import]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for imp in imports:
        if imp.target in graph and imp.target != imp.importer:
            graph[imp.importer].add(imp.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = itertools.count()

    def visit(v: str) -> None:
        index[v] = low[v] = next(counter)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for m in sorted(graph):
        if m not in index:
            visit(m)
    return found


def _package_of(module: str, modules: set[str]) -> str:
    """The package that owns ``module``: itself for a package, else its parent."""
    return module if any(m.startswith(module + ".") for m in modules) else module.rpartition(".")[0]


def private_uses(modules: set[str], imports: Iterable[Import]) -> list[str]:
    """Imports of a private name (``_x``) or a private module (``_x.py``) from outside its package."""
    problems = []
    for imp in imports:
        owner = _package_of(imp.target, modules)
        inside = imp.importer == owner or imp.importer.startswith(owner + ".")
        private_module = imp.target.rpartition(".")[2].startswith("_") and not imp.target.endswith("__")
        if private_module and not inside:
            problems.append(f"{imp.importer}:{imp.line} imports the private module {imp.target}")
        for name in imp.names:
            if name.startswith("_") and not name.startswith("__") and not inside:
                problems.append(f"{imp.importer}:{imp.line} imports the private name {imp.target}.{name}")
    return problems


# ------------------------------------------------------------------------------------------ the tests
def test_imports_go_one_way() -> None:
    _modules, imports = all_imports()
    assert upward_imports(imports) == []


def test_imports_go_one_way_inside_engine_and_operations() -> None:
    _modules, imports = all_imports()
    assert upward_sub_imports(imports) == []


def test_a_deliberate_upward_import_inside_a_layer_fails() -> None:
    bad = Import("safehold.engine.format.pack", "safehold.engine.backup.writer", (), 7)
    fine = Import("safehold.engine.backup.writer", "safehold.engine.format.pack", (), 9)
    shared = Import("safehold.engine.helper", "safehold.engine.memtune", (), 3)
    assert upward_sub_imports([bad, fine, shared]) == [
        "safehold.engine.format.pack:7 imports safehold.engine.backup.writer (upward inside engine)"
    ]


def test_no_import_cycles() -> None:
    modules, imports = all_imports()
    assert [c for c in cycles(modules, imports) if frozenset(c) not in ALLOWED_CYCLES] == []


def test_no_private_names_used_outside_their_package() -> None:
    modules, imports = all_imports()
    problems = private_uses(modules, imports)
    assert [p for p in problems if p.split(":")[0] not in ALLOWED_PRIVATE] == []


def test_a_deliberate_upward_import_fails(tmp_path: Path) -> None:
    """The checks can fail: an engine module importing the CLI, a cycle, a private name."""
    pkg = tmp_path / PACKAGE
    for sub in ("engine", "engine/backup", "cli", "sources", "sources/mysql"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "engine" / "backup" / "archiver.py").write_text("def f():\n    from safehold.cli import app\n")
    (pkg / "cli" / "app.py").write_text("from safehold.engine.backup.archiver import f\n")
    (pkg / "sources" / "mysql" / "client.py").write_text("_query = 1\n")
    (pkg / "sources" / "mysql" / "restore.py").write_text("from .client import _query\n")
    (pkg / "sources" / "doctor.py").write_text("from safehold.sources.mysql.client import _query\n")
    modules, imports = all_imports(tmp_path)
    assert upward_imports(imports, {}) == [
        "safehold.engine.backup.archiver:2 imports safehold.cli.app (an upward import)"
    ]
    assert cycles(modules, imports) == [["safehold.cli.app", "safehold.engine.backup.archiver"]]
    assert private_uses(modules, imports) == [
        "safehold.sources.doctor:1 imports the private name safehold.sources.mysql.client._query"
    ]


# ------------------------------------------------------------------------------- kinds stay in sources
#: Layers that call the Source contract and must not know any kind (DESIGN.md, "Source plugins").
KIND_BLIND = ("operations", "cli")
#: Kind names used as data where they mean something else, with the reason.
KIND_NAME_ALLOWED: dict[tuple[str, str], str] = {
    ("safehold.operations.export.snapshot", "files"): "a count in the export's summary ({'files': n})",
    ("safehold.operations.observe.report", "files"): "a column heading of the snapshot table (file counts)",
}


def _dispatch_literals(tree: ast.AST) -> list[ast.Constant]:
    """String constants where code branches on a value or keys a table by it: either side of a
    comparison, keys of dict displays, and items of tuple/list/set displays (a table of kinds compared
    elsewhere: ``kind in DATABASE_KINDS``)."""
    found: list[ast.Constant] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for side in [node.left, *node.comparators]:
                items = side.elts if isinstance(side, ast.Tuple | ast.List | ast.Set) else [side]
                found += [x for x in items if isinstance(x, ast.Constant)]
        elif isinstance(node, ast.Dict):
            found += [k for k in node.keys if isinstance(k, ast.Constant)]
        elif isinstance(node, ast.Tuple | ast.List | ast.Set):
            found += [x for x in node.elts if isinstance(x, ast.Constant)]
    return list({id(c): c for c in found}.values())


def kind_literals(root: Path = SRC) -> list[tuple[str, str, int]]:
    """(module, name, line) wherever the kind-blind layers branch on a kind's name (compare with it, key
    a table by it) or import a kind's package."""
    from safehold.sources import registry

    kinds = set(registry.kinds())
    packages = {f"safehold.sources.{k.replace('-', '_').replace('/', '.')}" for k in kinds}
    found = []
    for layer in KIND_BLIND:
        for path in sorted((root / PACKAGE / layer).rglob("*.py")):
            me = module_name(path, root)
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.ImportFrom)
                    and node.module
                    and node.module.startswith(tuple(packages))
                ):
                    found.append((me, node.module, node.lineno))
            for const in _dispatch_literals(tree):
                if isinstance(const.value, str) and const.value in kinds:
                    found.append((me, const.value, const.lineno))
    return sorted(found, key=lambda f: (f[0], f[2]))


def test_operations_and_cli_name_no_source_kind() -> None:
    """No module of operations/ or cli/ is exempt: every kind-specific decision is the contract's."""
    found = [f for f in kind_literals() if (f[0], f[1]) not in KIND_NAME_ALLOWED]
    assert found == [], "operations/cli must call the Source contract, not name a kind"


def test_a_kind_name_in_operations_is_found(tmp_path: Path) -> None:
    pkg = tmp_path / PACKAGE
    (pkg / "operations").mkdir(parents=True)
    (pkg / "cli").mkdir()
    (pkg / "operations" / "restore.py").write_text(
        "from safehold.sources.mysql.client import query\n"
        'if kind == "postgresql" or kind in ("redis", "git"):\n'
        '    ORDER = {"files": 1}\n'
        'print(record["command"], "files")\n'  # data, not a kind: not reported
    )
    assert kind_literals(tmp_path) == [
        ("safehold.operations.restore", "safehold.sources.mysql.client", 1),
        ("safehold.operations.restore", "postgresql", 2),
        ("safehold.operations.restore", "redis", 2),
        ("safehold.operations.restore", "git", 2),
        ("safehold.operations.restore", "files", 3),
    ]
