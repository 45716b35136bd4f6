"""The package's parts import one way: shared modules at the bottom, then world and probing,
then edits and sd, then serve and the CLI. No module imports a part above its own."""

import ast
from pathlib import Path

import probe_core

PACKAGE = Path(probe_core.__file__).parent
LEVEL = {"settings": 0, "metrics": 0, "viz": 0, "offline": 0, "models": 0,
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
