"""The package layout is the architecture: each layer imports only the layers below it, with no circles.

Every import counts, module-level or inside a function (a lazy import is still a
dependency), including ``if TYPE_CHECKING:`` blocks.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "rootwatch"

# package -> the rootwatch packages it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "detection": {"core"},
    "lambdas": {"core", "detection"},
    "compliance": {"core", "detection"},
    "program": {"core", "detection", "lambdas", "compliance"},
    "vending": {"core", "program"},
    "commands": {"core", "detection", "lambdas", "compliance", "program", "vending"},
}
# Code that runs inside AWS Lambda may use only what the Lambda runtime has.
LAMBDA_THIRD_PARTY = {"boto3", "botocore"}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(module: str) -> set[str]:
    """Every module name this module imports (absolute, relative ones resolved)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES)
    return found


def internal_edges() -> dict[str, set[str]]:
    return {m: {i for i in imports_of(m) if i in MODULES and i != m and i != "rootwatch"} for m in MODULES}


def test_every_subpackage_says_what_lives_there() -> None:
    for pkg in ALLOWED:
        init = PACKAGE / pkg / "__init__.py"
        assert init.is_file(), pkg
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc.split()) >= 12, f"rootwatch/{pkg}/__init__.py needs a docstring saying what lives there"
    top = {p.name for p in PACKAGE.glob("*.py")}
    assert top == {"__init__.py"}, f"modules outside the subpackages: {sorted(top - {'__init__.py'})}"


def test_no_import_circles() -> None:
    edges = internal_edges()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(edges[m]):
            if state.get(n) == 1:
                cycle = stack[stack.index(n):] + [n]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)


def test_layers_import_only_downwards() -> None:
    bad = []
    for m, targets in internal_edges().items():
        parts = m.split(".")
        if len(parts) < 2:
            continue
        for t in targets:
            tp = t.split(".")[1]
            if tp != parts[1] and tp not in ALLOWED[parts[1]]:
                bad.append(f"{m} imports {t}")
    assert not bad, bad


def test_lambda_code_imports_only_the_standard_library_boto3_and_detection() -> None:
    for m in (m for m in MODULES if m.startswith(("rootwatch.lambdas", "rootwatch.detection", "rootwatch.core"))):
        for i in imports_of(m):
            top = i.split(".")[0]
            assert top in sys.stdlib_module_names or top in LAMBDA_THIRD_PARTY or top == "rootwatch", f"{m} imports {i}"


def test_cli_start_up_imports_neither_pulumi_nor_boto3() -> None:
    code = (
        "import sys, rootwatch.commands.cli as cli; cli.build_parser();"
        "print(sorted(m for m in ('pulumi', 'pulumi_aws', 'boto3', 'botocore', 'pydantic') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
