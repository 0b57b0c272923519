"""`--key` and `--require-signature` on every command that reads a manifest, and a verdict line that says
itself when its manifest is unsigned or signed by an unknown key."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import CliResult

Run = Callable[..., CliResult]


@pytest.fixture
def keys(run_cli: Run, tmp_path: Path) -> dict[str, Path]:
    for name in ("alice", "mallory"):
        assert run_cli("keygen", tmp_path / name).code == 0
    return {name: tmp_path / name for name in ("alice.key", "alice.pub", "mallory.key", "mallory.pub")}


@pytest.fixture
def signed(run_cli: Run, release_manifest: Path, keys: dict[str, Path], tmp_path: Path) -> Path:
    out = tmp_path / "release.sig"
    assert run_cli("sign", release_manifest, "--key", keys["alice.key"], "-o", out).code == 0
    return out


def test_the_verdict_line_says_the_manifest_is_unsigned(
    run_cli: Run, copy_of_release: Path, release_manifest: Path
) -> None:
    result = run_cli("verify", copy_of_release, "--manifest", release_manifest, "-q")
    assert result.code == 0
    assert result.out.splitlines()[0] == "verdict: identical (unsigned manifest: nothing proves who published it)"


def test_the_verdict_line_says_the_signer_is_unknown(run_cli: Run, copy_of_release: Path, signed: Path) -> None:
    result = run_cli("verify", copy_of_release, "--manifest", signed, "-q")
    assert result.code == 0
    assert result.out.splitlines()[0] == "verdict: identical (signed by an unknown key: the signature was not checked)"


def test_a_valid_signature_leaves_the_verdict_line_alone(
    run_cli: Run, copy_of_release: Path, signed: Path, keys: dict[str, Path]
) -> None:
    result = run_cli("verify", copy_of_release, "--manifest", signed, "--key", keys["alice.pub"], "-q")
    assert result.code == 0
    assert result.out.splitlines()[0] == "verdict: identical"


def test_two_checkpoints_on_disk_have_no_manifest_to_speak_of(
    run_cli: Run, copy_of_release: Path, release_dir: Path
) -> None:
    result = run_cli("diff", release_dir, copy_of_release, "-q")
    assert result.code == 0
    assert result.out.splitlines()[0] == "verdict: identical"


def test_require_signature_refuses_an_unsigned_manifest(
    run_cli: Run, copy_of_release: Path, release_manifest: Path
) -> None:
    result = run_cli("verify", copy_of_release, "--manifest", release_manifest, "--require-signature", "-q")
    assert result.code == 3
    assert result.err == (
        f"error: {release_manifest} is an unsigned manifest, but a signature was required (--require-signature); "
        "give the signature bundle instead\n"
    )
    assert result.out == ""


def test_require_signature_refuses_an_unknown_signer(run_cli: Run, copy_of_release: Path, signed: Path) -> None:
    result = run_cli("verify", copy_of_release, "--manifest", signed, "--require-signature", "-q")
    assert result.code == 3
    assert "which is not trusted, and --require-signature requires a trusted signature" in result.err


def test_require_signature_accepts_a_trusted_signer(
    run_cli: Run, copy_of_release: Path, signed: Path, keys: dict[str, Path]
) -> None:
    import os

    trusted = Path(os.environ["XDG_CONFIG_HOME"]) / "weights-provenance" / "trusted_keys"
    trusted.mkdir(parents=True)
    shutil.copyfile(keys["alice.pub"], trusted / "alice.pub")
    result = run_cli("verify", copy_of_release, "--manifest", signed, "--require-signature", "-q")
    assert result.code == 0
    assert result.out.splitlines()[0] == "verdict: identical"


def test_diff_takes_key_and_require_signature(
    run_cli: Run, copy_of_release: Path, signed: Path, release_manifest: Path, keys: dict[str, Path]
) -> None:
    ok = run_cli("diff", signed, copy_of_release, "--key", keys["alice.pub"], "-q")
    assert ok.code == 0 and ok.out.splitlines()[0] == "verdict: identical"
    wrong = run_cli("diff", signed, copy_of_release, "--key", keys["mallory.pub"], "-q")
    assert wrong.code == 3 and "not by the key given (mallory.pub)" in wrong.err
    unsigned = run_cli("diff", release_manifest, copy_of_release, "--require-signature", "-q")
    assert unsigned.code == 3


def test_torrent_and_audit_take_require_signature(run_cli: Run, release_manifest: Path, tmp_path: Path) -> None:
    torrent = tmp_path / "x.torrent"
    torrent.write_bytes(b"d4:infod4:name1:x6:lengthi1e12:piece lengthi16384e6:pieces20:" + b"\0" * 20 + b"ee")
    result = run_cli("torrent", torrent, "--manifest", release_manifest, "--require-signature")
    assert result.code == 3 and "(--require-signature)" in result.err
    result = run_cli("audit", "hf://org/repo", "--manifest", release_manifest, "--require-signature")
    assert result.code == 3 and "(--require-signature)" in result.err
    result = run_cli("audit", "cache", "--manifest", release_manifest, "--require-signature")
    assert result.code == 3 and "(--require-signature)" in result.err
