"""The rooms' walls: what each package may import, checked on the source itself."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path, root: Path = ROOT) -> Iterator[tuple[int, str]]:
    """Every module a file imports (line, dotted name), wherever the import is: top level, inside a
    function, under TYPE_CHECKING. `from X import Y` yields X.Y too, so a submodule imported by name counts."""
    tree = ast.parse(path.read_text(), filename=str(path))
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
        for line, module in _imports(path)
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
    found = [module for _, module in _imports(source, tmp_path) if _cli_may_not_import(module)]
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
