"""The dcgan modules a file imports, read from its source: what test_house draws the import
graph from and what test_dvc_deps checks dvc.yaml's deps against."""

from __future__ import annotations

import ast
from pathlib import Path

from .conftest import ROOT


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in (ROOT / "dcgan").rglob("*.py")}


def imports_in(path: Path, package: str = "") -> set[str]:
    """The dcgan modules ``path`` imports, at the top or inside a function (a lazy import
    still runs one way or the other); ``package`` resolves its relative imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in MODULES}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found |= {full} if full in MODULES else {base} & MODULES.keys()
    return found


def dcgan_imports(name: str) -> set[str]:
    """The dcgan modules the dcgan module ``name`` imports itself."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    return imports_in(path, package) - {name}


def files_run_by(path: Path) -> set[Path]:
    """Every dcgan file that importing ``path`` runs: the modules it imports, the packages
    above them (a package's __init__ runs first), and theirs in turn."""
    seen: set[Path] = set()
    todo = sorted(imports_in(path))
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            above = ".".join(parts[:i])
            if above in MODULES and MODULES[above] not in seen:
                seen.add(MODULES[above])
                todo.extend(dcgan_imports(above))
    return seen
