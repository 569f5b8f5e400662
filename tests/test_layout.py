"""The layout's promises: no import cycle in either package, and `tuning` is built on
`fishleg`, never the other way round (imports inside functions count too)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def import_graph() -> dict[str, set[str]]:
    """module → the project modules it imports, at any depth of its code."""
    modules = {}
    for package in ("fishleg", "tuning"):
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            modules[name] = path
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def test_no_import_cycles():
    graph = import_graph()

    def parent_child(a: str, b: str) -> bool:  # a package importing its own submodules is not a cycle
        return b.startswith(a + ".") or a.startswith(b + ".")

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph[start]:
            if nxt == goal or (nxt not in seen and not parent_child(start, nxt) and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    cycles = [m for m in graph if any(not parent_child(m, n) and reaches(n, m, {n}) for n in graph[m])]
    assert cycles == []


def test_fishleg_imports_nothing_of_tuning():
    graph = import_graph()
    assert {(m, t) for m, ts in graph.items() if m.startswith("fishleg") for t in ts if t.startswith("tuning")} == set()


# tuning's parts, lowest first; a part imports only from its own level and those below it.
LAYERS = [
    {"errors", "versions", "transient", "yaml_files"},
    {"records"},
    {"run", "data"},
    {"workloads"},
    {"training"},
    {"sweep"},
    {"selection"},
    {"report", "driver"},
    {"compare", "summary", "replay"},
    {"api"},
    {"cli"},
]


def test_tuning_parts_import_downward():
    level = {part: i for i, parts in enumerate(LAYERS) for part in parts}
    graph = import_graph()
    parts = {m.split(".")[1] for m in graph if m.startswith("tuning.")}
    assert parts <= set(level), f"a new part of tuning needs a place in LAYERS: {sorted(parts - set(level))}"
    upward = [
        (m, t)
        for m, ts in graph.items()
        if m.startswith("tuning.")
        for t in ts
        if t.startswith("tuning.") and level[t.split(".")[1]] > level[m.split(".")[1]]
    ]
    assert upward == []


def test_modules_and_folders_stay_small_enough_to_read():
    """The house's sizes: no module over 450 lines, no folder of more than 12 modules (a package's
    `__init__` not counted); past them a part is split, not grown."""
    modules = [p for package in ("fishleg", "tuning") for p in (ROOT / package).rglob("*.py")]
    long = {str(p.relative_to(ROOT)): n for p in modules if (n := len(p.read_text().splitlines())) > 450}
    folders: dict[Path, int] = {}
    for p in modules:
        if p.name != "__init__.py":
            folders[p.parent] = folders.get(p.parent, 0) + 1
    crowded = {str(folder.relative_to(ROOT)): n for folder, n in folders.items() if n > 12}
    assert (long, crowded) == ({}, {})
