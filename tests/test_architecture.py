"""DESIGN.md's architecture, held by reading the source: imports go one way (cli -> provenance -> manifests),
and modules and functions stay short enough to read whole.

Imports are found with `ast` anywhere in a module (inside functions and `if TYPE_CHECKING:` blocks too),
relative ones resolved, and `importlib.import_module("...")` or `__import__("...")` of a literal name count.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
LIMITED = ("provenance", "manifests", "cli", "benchmarks")

# The offenders of the day the limits were set, being split: an entry goes once it is under the limit (the
# last test says which), and the lists only shrink.
ALLOWED_LONG_MODULES: frozenset[str] = frozenset()
ALLOWED_LONG_FUNCTIONS: frozenset[str] = frozenset()


def modules(package: str) -> Iterator[Path]:
    """The package's Python files, leaving out what runs create inside it (benchmarks/.venv, benchmarks/data)."""
    for path in sorted((ROOT / package).rglob("*.py")):
        folders = path.relative_to(ROOT).parts[:-1]
        if not any(part.startswith(".") or part in ("data", "__pycache__") for part in folders):
            yield path


def package_of(path: Path) -> tuple[str, ...]:
    """The package a module's relative imports start from: the folder it is in (for __init__.py too)."""
    return path.relative_to(ROOT).parts[:-1]


def imports_in(source: str, package: tuple[str, ...]) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in `source`, wherever it stands."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else ()
            yield node.lineno, ".".join([*base, *([node.module] if node.module else [])])
        elif isinstance(node, ast.Call) and _imports_by_name(node.func) and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield node.lineno, first.value


def _imports_by_name(func: ast.expr) -> bool:
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    return name in ("import_module", "__import__")


def crossings(package: str, forbidden: tuple[str, ...]) -> list[str]:
    """Where modules of `package` import one of the `forbidden` top-level packages."""
    found = []
    for path in modules(package):
        for line, name in imports_in(path.read_text(), package_of(path)):
            if name.split(".")[0] in forbidden:
                found.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    return found


def test_the_import_finder_sees_imports_in_functions_type_checking_blocks_and_strings() -> None:
    """The finder itself: an import hidden anywhere, or named as a string, is found by its absolute name."""
    source = (
        "import importlib\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from provenance.report import Report\n"
        "def late() -> None:\n"
        "    import cli.app\n"
        "    from ...provenance import errors\n"
        "    from . import bundle\n"
        "    importlib.import_module('provenance._checks.verify')\n"
        "    __import__('cli')\n"
    )
    found = sorted(name for _, name in imports_in(source, ("manifests", "signing")))
    assert found == sorted(
        [
            "importlib",
            "typing",
            "provenance.report",
            "cli.app",
            "provenance",
            "manifests.signing",
            "provenance._checks.verify",
            "cli",
        ]
    )


def test_manifests_import_neither_provenance_nor_cli() -> None:
    """manifests/ is the document alone: it knows nothing of how weights are read or shown."""
    assert crossings("manifests", ("provenance", "cli")) == []


def test_provenance_never_imports_cli() -> None:
    """The library works without the command line: cli/ calls provenance/, never the other way."""
    assert crossings("provenance", ("cli",)) == []


def _function_lengths(node: ast.AST, prefix: str = "") -> Iterator[tuple[str, int]]:
    """(qualified name, lines from `def` to its last line) of every function, methods and nested ones too."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            yield prefix + child.name, (child.end_lineno or child.lineno) - child.lineno + 1
            yield from _function_lengths(child, f"{prefix}{child.name}.")
        elif isinstance(child, ast.ClassDef):
            yield from _function_lengths(child, f"{prefix}{child.name}.")
        else:
            yield from _function_lengths(child, prefix)


def offenders() -> tuple[set[str], set[str]]:
    """(modules over MAX_MODULE_LINES, functions over MAX_FUNCTION_LINES) in the limited packages."""
    long_modules, long_functions = set(), set()
    for package in LIMITED:
        for path in modules(package):
            name, source = path.relative_to(ROOT).as_posix(), path.read_text()
            if len(source.splitlines()) > MAX_MODULE_LINES:
                long_modules.add(name)
            lengths = _function_lengths(ast.parse(source))
            long_functions |= {f"{name}::{function}" for function, lines in lengths if lines > MAX_FUNCTION_LINES}
    return long_modules, long_functions


def test_no_module_or_function_over_the_limits_but_the_allowed() -> None:
    """A module over 400 lines or a function over 60 is too long to read whole: split it."""
    long_modules, long_functions = offenders()
    assert sorted(long_modules - ALLOWED_LONG_MODULES) == [], f"over {MAX_MODULE_LINES} lines"
    assert sorted(long_functions - ALLOWED_LONG_FUNCTIONS) == [], f"over {MAX_FUNCTION_LINES} lines"


def test_the_allow_lists_name_only_todays_offenders() -> None:
    """An entry whose module or function is short now (or gone) leaves the list."""
    long_modules, long_functions = offenders()
    assert sorted(ALLOWED_LONG_MODULES - long_modules) == [], "short now: remove from ALLOWED_LONG_MODULES"
    assert sorted(ALLOWED_LONG_FUNCTIONS - long_functions) == [], "short now: remove from ALLOWED_LONG_FUNCTIONS"


def _imported_names(path: Path, root: Path = ROOT) -> Iterator[tuple[int, str]]:
    """Every module a file imports (line, dotted name), wherever the import is: top level, inside a
    function, under TYPE_CHECKING. `from X import Y` yields X.Y too, so a submodule imported by name counts."""
    tree = ast.parse(path.read_text(), filename=str(path))
    inner: set[int] = set()  # attribute accesses already read as part of a longer one
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against the file's own package
                package = path.relative_to(root).parent.parts
                base = ".".join(package[: len(package) - node.level + 1] + ((node.module,) if node.module else ()))
            else:
                base = node.module or ""
            yield node.lineno, base
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"
        elif isinstance(node, ast.Call) and _imports_by_name(node.func) and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield node.lineno, first.value
        elif isinstance(node, ast.Attribute) and id(node) not in inner:
            chain = _attribute_chain(node, inner)
            if chain.split(".")[0] in ("provenance", "manifests"):
                yield node.lineno, chain


def _attribute_chain(node: ast.Attribute, inner: set[int]) -> str:
    """`a.b.c` of an attribute access, its inner accesses marked seen (`a.b` is part of `a.b.c`)."""
    parts = [node.attr]
    value = node.value
    while isinstance(value, ast.Attribute):
        inner.add(id(value))
        parts.append(value.attr)
        value = value.value
    return ".".join([value.id, *reversed(parts)]) if isinstance(value, ast.Name) else ""


def _cli_may_not_import(module: str) -> bool:
    """The CLI talks to the library through `provenance`'s top-level names only."""
    top = module.split(".")[0]
    if top == "manifests":
        return True
    return top == "provenance" and module != "provenance" and _is_submodule(module)


def _is_submodule(module: str) -> bool:
    """`provenance.X` is a submodule (forbidden) when X is a module of the package, not an exported name."""
    import provenance

    parts = module.split(".")
    if len(parts) > 2:  # provenance.a.b is always a path into the package
        return True
    return parts[1] not in provenance.__all__


def test_cli_imports_only_the_public_api_of_provenance() -> None:
    offending = [
        f"{path.relative_to(ROOT)}:{line}: {module}"
        for path in sorted((ROOT / "cli").rglob("*.py"))
        for line, module in _imported_names(path)
        if _cli_may_not_import(module)
    ]
    assert not offending, "cli/ must import only `provenance` and its exported names:\n" + "\n".join(offending)


def test_the_import_check_sees_every_kind_of_import(tmp_path: Path) -> None:
    """The check itself: a private import hidden in a function or a TYPE_CHECKING block is still found."""
    source = tmp_path / "sample.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "import provenance\n"
        "from provenance import verify, Report\n"
        "if TYPE_CHECKING:\n"
        "    from provenance.report import Verdict\n"
        "def f() -> None:\n"
        "    from provenance._checks.verify import verify_checkpoint\n"
        "    import manifests.io\n"
        "    from provenance import errors\n"
    )
    found = [module for _, module in _imported_names(source, tmp_path) if _cli_may_not_import(module)]
    assert found == [
        "provenance.report",
        "provenance.report.Verdict",
        "provenance._checks.verify",
        "provenance._checks.verify.verify_checkpoint",
        "manifests.io",
        "provenance.errors",
    ]


def test_every_public_name_resolves_and_importing_provenance_stays_cheap() -> None:
    """Each name of `provenance.__all__` resolves; `import provenance` alone loads none of the heavy
    dependencies (the CLI's start-up and `--json` scripts pay only for what a command uses)."""
    heavy = ("numpy", "blake3", "gguf", "huggingface_hub", "cryptography", "rich", "safetensors")
    code = (
        "import sys, provenance\n"
        f"print(','.join(m for m in {heavy!r} if m in sys.modules))\n"
        "missing = [n for n in provenance.__all__ if getattr(provenance, n, None) is None]\n"
        "print(','.join(missing))\n"
        "print(','.join(sorted(set(provenance.__all__) ^ set(provenance._EXPORTS))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    loaded_on_import, missing, unlisted = result.stdout.split("\n")[:3]
    assert loaded_on_import == ""
    assert missing == ""
    assert unlisted == ""  # __all__ and the lazy table name the same things


def test_the_import_check_sees_imports_by_name_and_private_attributes(tmp_path: Path) -> None:
    """A private module reached without an import statement: by `importlib.import_module`/`__import__` of a
    literal, or as an attribute of `provenance` (`provenance._checks.verify`, loaded by another import)."""
    source = tmp_path / "sample.py"
    source.write_text(
        "import importlib\n"
        "import provenance\n"
        "def f() -> None:\n"
        "    importlib.import_module('provenance._checks.verify')\n"
        "    __import__('manifests.io')\n"
        "    provenance._judging.compare.judge\n"
        "    provenance.verify\n"
    )
    found = [module for _, module in _imported_names(source, tmp_path) if _cli_may_not_import(module)]
    assert found == ["provenance._checks.verify", "manifests.io", "provenance._judging.compare.judge"]
