"""The README's example of the extra-file rule is the tool's real output: run its commands and compare."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import CliResult

README = Path(__file__).resolve().parents[1] / "README.md"
GOLDEN = Path(__file__).resolve().parent / "golden" / "model"


def _block_after(heading: str) -> str:
    """The first console block of a README section."""
    text = README.read_text()
    section = text[text.index(heading) :]
    match = re.search(r"```\n(\$ provenance .*?)```\n", section, re.S)
    assert match is not None, f"no console block under {heading!r}"
    return match.group(1)


def test_green_verdict_example_is_real_output(
    run_cli: Callable[..., CliResult], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = run_cli
    monkeypatch.chdir(tmp_path)
    shutil.copytree(GOLDEN, tmp_path / "release")
    made = run("fingerprint", "release", "-o", "release.manifest.json")
    assert made.code == 0
    shutil.copytree(tmp_path / "release", tmp_path / "download")
    (tmp_path / "download" / "modeling_llama.py").write_text("x=1\n")

    block = _block_after("## What a green verdict means")
    expected = re.split(r"^\$ provenance ", block, flags=re.M)[1:]
    assert len(expected) == 2
    codes = []
    for shown in expected:
        command, _, output = shown.partition("\n")
        result = run(*command.split(), "-q")
        assert result.out == output, command
        codes.append(result.code)
    assert codes == [1, 0]


def test_library_example_is_real_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's library section runs as printed and prints what it shows."""
    import contextlib
    import io

    text = README.read_text()
    section = text[text.index("## Use it as a library") :]
    code = re.search(r"```python\n(.*?)```\n", section, re.S)
    shown = re.search(r"```text\n(.*?)```\n", section, re.S)
    assert code is not None and shown is not None
    monkeypatch.chdir(tmp_path)
    shutil.copytree(GOLDEN, tmp_path / "release")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code.group(1), "README.md", "exec"), {"__name__": "readme"})
    assert out.getvalue() == shown.group(1)


DEMO = "/tmp/demo"  # where the README's examples put the demo; the test builds it elsewhere


def _blocks_on_the_demo() -> list[str]:
    """Every console block of the README whose commands run on the demo's files."""
    blocks = re.findall(r"```\n(\$ provenance .*?)```\n", README.read_text(), re.S)
    return [b for b in blocks if b.partition("\n")[0].count(DEMO)]


def test_demo_examples_are_real_output(run_cli: Callable[..., CliResult], tmp_path: Path) -> None:
    """The demo block and every example run on the demo's files print what the README shows."""
    blocks = _blocks_on_the_demo()
    assert blocks and blocks[0].startswith(f"$ provenance demo --dir {DEMO}\n")
    where = str(tmp_path / "demo")
    command, _, output = blocks[0].partition("\n")  # the demo prints the commands it runs itself
    result = run_cli("demo", "--dir", where)
    assert (result.code, result.out.replace(where, DEMO)) == (0, output)
    for block in blocks[1:]:
        for shown in re.split(r"^\$ provenance ", block, flags=re.M)[1:]:
            command, _, output = shown.partition("\n")
            args = command.replace(DEMO, where).split()
            result = run_cli(*args, "-q")
            assert result.out.replace(where, DEMO) == output, command


def test_download_example_is_real_output(
    run_cli: Callable[..., CliResult], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The verified-download block, run against the hub-compatible server with the mirrors it names."""
    from provenance._sample import build_sample_release
    from tests.support.hubserver import FakeHub

    monkeypatch.chdir(tmp_path)
    release = build_sample_release(tmp_path / "release")
    assert run_cli("fingerprint", "release", "--name", "sample-release", "-o", "release.manifest.json").code == 0
    files = {p.name: p.read_bytes() for p in sorted(release.iterdir())}
    shard = "model-00002-of-00003.safetensors"
    changed = bytearray(files[shard])
    changed[70_000] ^= 1
    block = _block_after("### Verified downloads")
    with FakeHub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        hub.add_repo("acme/sample-release", files)
        hub.add_repo("leaks/sample-release", files, served={shard: bytes(changed)})
        codes = []
        for shown in re.split(r"^\$ provenance ", block, flags=re.M)[1:]:
            command, _, output = shown.partition("\n")
            result = run_cli(*command.split(), "-q")
            assert result.out == output, command
            codes.append(result.code)
    assert codes == [0, 1]
