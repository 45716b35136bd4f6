"""The package's parts import one way: shared modules at the bottom, then world and probing,
then edits and sd, then serve and the CLI. No module imports a part above its own."""

import ast
from pathlib import Path

import probe_core

PACKAGE = Path(probe_core.__file__).parent
LEVEL = {"settings": 0, "metrics": 0, "viz": 0, "offline": 0, "families": 0, "models": 0,
         "world": 1, "probing": 1, "edits": 2, "sd": 2, "serve": 3, "cli": 4,
         "__init__": 5, "__main__": 5}
INDEPENDENT = {("world", "probing"), ("probing", "world"), ("edits", "sd"), ("sd", "edits")}


def part_of(module: str) -> str:
    """'probe_core.probing.denoise' -> 'probing'; 'probe_core.settings' -> 'settings'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports_of(path: Path, package: Path = PACKAGE) -> set[str]:
    """The probe_core modules a file imports, as absolute dotted names."""
    rel = path.relative_to(package.parent).with_suffix("")
    here = list(rel.parts) if path.name != "__init__.py" else list(rel.parts[:-1]) + ["__init__"]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - node.level]
                name = ".".join(base + ([node.module] if node.module else []))
                targets = [name] if node.module else [f"{name}.{a.name}" for a in node.names]
            else:
                targets = [node.module or ""]
            out |= {t for t in targets if t.startswith("probe_core")}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("probe_core")}
    return out


def violations(package: Path) -> list[str]:
    """'a/b.py imports probe_core.x.y' for every import that runs up, or across two parts that
    must stay independent."""
    wrong = []
    for path in sorted(package.rglob("*.py")):
        if path.name in ("__init__.py", "__main__.py") and path.parent == package:
            continue  # the public API re-exports from every part
        mine = part_of(".".join(path.relative_to(package.parent).with_suffix("").parts))
        for target in sorted(imports_of(path, package)):
            theirs = part_of(target)
            if theirs == mine:
                continue
            if LEVEL[theirs] > LEVEL[mine] or (LEVEL[theirs] == LEVEL[mine] and LEVEL[mine] > 0) \
                    or (mine, theirs) in INDEPENDENT:
                wrong.append(f"{path.relative_to(package).as_posix()} imports {target}")
    return wrong


def test_every_module_belongs_to_a_known_part():
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        assert part_of(module) in LEVEL, f"{module}: add its part to LEVEL"


def test_imports_never_run_back_up():
    wrong = violations(PACKAGE)
    assert not wrong, "\n".join(wrong)


def test_the_check_sees_a_wrong_import(tmp_path):
    package = tmp_path / "probe_core"
    (package / "probing").mkdir(parents=True)
    (package / "world").mkdir()
    (package / "probing" / "bad.py").write_text(
        "from ..serve.facade import ProbeDemo\nfrom . import hooks\nfrom .. import settings\n")
    (package / "world" / "worse.py").write_text("import probe_core.probing.denoise\n")
    assert violations(package) == ["probing/bad.py imports probe_core.serve.facade",
                                   "world/worse.py imports probe_core.probing.denoise"]


# ----------------------------------------------------------------------------- house rules
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
MAX_PARAMETERS = 8  # self and cls not counted; *args and **kwargs count one each
ROOT = PACKAGE.parent


def parameters(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    a = node.args
    named = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs if x.arg not in ("self", "cls")]
    return len(named) + bool(a.vararg) + bool(a.kwarg)


def house_rule_breaks(package: Path) -> list[str]:
    """'path: what' for every module over MAX_MODULE_LINES, function over MAX_FUNCTION_LINES
    or with more than MAX_PARAMETERS parameters, and every import guarded by ImportError."""
    found = []
    for path in sorted(package.rglob("*.py")):
        text = path.read_text()
        name = path.relative_to(package).as_posix()
        if text.count("\n") > MAX_MODULE_LINES:
            found.append(f"{name}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    found.append(f"{name}: {node.name} has {length} lines")
                if parameters(node) > MAX_PARAMETERS:
                    found.append(f"{name}: {node.name} has {parameters(node)} parameters")
            if isinstance(node, ast.ExceptHandler) and "ImportError" in ast.unparse(
                    node.type or ast.Name("")):
                found.append(f"{name}: an import guarded by ImportError (line {node.lineno})")
    return found


def import_cycles(package: Path) -> list[list[str]]:
    """Every cycle of imports between the package's modules (function-local imports too)."""
    graph = {}
    for path in package.rglob("*.py"):
        rel = path.relative_to(package.parent).with_suffix("")
        parts = list(rel.parts[:-1]) if path.name == "__init__.py" else list(rel.parts)
        me = ".".join(parts)
        mods = {t if (package.parent / Path(*t.split("."))).with_suffix(".py").exists()
                or (package.parent / Path(*t.split("."))).is_dir() else t.rsplit(".", 1)[0]
                for t in imports_of(path, package)}
        graph[me] = {m.removesuffix(".__init__") for m in mods} - {me}
    cycles, state = [], {}

    def visit(node, trail):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(trail[trail.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    # a package's __init__ may import its own submodules (the public API); that is no cycle
    return [c for c in cycles if not any(a == "probe_core" for a in c)]


def test_modules_functions_and_parameter_lists_stay_small():
    breaks = house_rule_breaks(PACKAGE)
    assert not breaks, "\n".join(breaks)


def test_the_house_rules_check_sees_every_kind_of_break(tmp_path):
    package = tmp_path / "probe_core"
    package.mkdir()
    long_body = "\n".join(f"    x{k} = {k}" for k in range(80))
    (package / "big.py").write_text(
        "def many(a, b, c, d, e, f, g, h, *rest):\n    pass\n\n\n"
        f"def long():\n{long_body}\n\n\n"
        "try:\n    import numpy\nexcept ImportError:\n    numpy = None\n" + "\n" * 320)
    breaks = house_rule_breaks(package)
    assert len(breaks) == 4 and any("many has 9 parameters" in b for b in breaks)
    assert any("long has 81 lines" in b for b in breaks)
    assert any("ImportError" in b for b in breaks) and any(" lines" in b for b in breaks)


def test_no_import_cycles():
    cycles = import_cycles(PACKAGE)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_the_cycle_check_sees_a_cycle(tmp_path):
    package = tmp_path / "probe_core"
    (package / "edits").mkdir(parents=True)
    (package / "edits" / "a.py").write_text("from .b import thing\n")
    (package / "edits" / "b.py").write_text("def thing():\n    from . import a\n")
    assert import_cycles(package) == [["probe_core.edits.a", "probe_core.edits.b",
                                       "probe_core.edits.a"]]


def edit_builders(paths) -> set[str]:
    """The files that call `Edit(...)` (by name or as an attribute)."""
    found = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and (
                    getattr(node.func, "id", None) == "Edit"
                    or getattr(node.func, "attr", None) == "Edit"):
                found.add(path.relative_to(ROOT).as_posix())
    return found


def test_exactly_one_module_builds_an_edit():
    """Every edit the app, the CLI, the evaluation and the benches run is planned in one
    place (`edits.plan`), from an EditRequest and EditSettings."""
    code = [*PACKAGE.rglob("*.py"), *(ROOT / "bench").glob("*.py"), ROOT / "app.py"]
    assert edit_builders(code) == {"probe_core/edits/plan.py"}
