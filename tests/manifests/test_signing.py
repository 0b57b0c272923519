"""Signing and signature checks: round trips, interop with the real model_signing, tampering, rollback."""

from __future__ import annotations

import base64
import json
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from manifests.keys import load_signer
from manifests.signing.bundle import make_bundle
from tests.conftest import CliResult
from tests.support.limits import bounded
from tests.support.references import json_error_or_nothing

Run = Callable[..., CliResult]
MODEL_SIGNING = Path(sys.executable).with_name("model_signing")
needs_model_signing = pytest.mark.skipif(
    not MODEL_SIGNING.exists(), reason="model-signing is not installed in this environment (pip install -e '.[test]')"
)


@pytest.fixture
def keys(run_cli: Run, tmp_path: Path) -> dict[str, Path]:
    result = run_cli("keygen", tmp_path / "alice")
    assert result.code == 0, result.err
    assert run_cli("keygen", tmp_path / "mallory").code == 0
    return {
        "alice.key": tmp_path / "alice.key",
        "alice.pub": tmp_path / "alice.pub",
        "mallory.key": tmp_path / "mallory.key",
        "mallory.pub": tmp_path / "mallory.pub",
    }


@pytest.fixture
def signed(run_cli: Run, release_manifest: Path, keys: dict[str, Path], tmp_path: Path) -> Path:
    out = tmp_path / "release.sig"
    result = run_cli("sign", release_manifest, "--key", keys["alice.key"], "-o", out)
    assert result.code == 0, result.err
    return out


def verify(run_cli: Run, target: Path, manifest: Path, *extra: str | Path) -> tuple[CliResult, dict[str, Any]]:
    result = run_cli("verify", target, "--manifest", manifest, "--json", "-q", *extra)
    assert "Traceback" not in result.err
    return result, (json.loads(result.out) if result.out else {})


def bundle_of(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def rewrite_payload(path: Path, mutate: Callable[[dict[str, Any]], None]) -> None:
    """Change the signed statement inside a bundle without re-signing it, as a tamperer would."""
    bundle = bundle_of(path)
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    mutate(statement)
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    path.write_text(json.dumps(bundle))


def test_keygen_writes_a_private_key_only_its_owner_reads(run_cli: Run, keys: dict[str, Path]) -> None:
    assert stat.S_IMODE(keys["alice.key"].stat().st_mode) == 0o600
    assert keys["alice.pub"].read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert b"ENCRYPTED" not in keys["alice.key"].read_bytes()


def test_keygen_never_overwrites_without_force(run_cli: Run, keys: dict[str, Path], tmp_path: Path) -> None:
    before = keys["alice.key"].read_bytes()
    result = run_cli("keygen", tmp_path / "alice")
    assert (result.code, result.err.count("\n")) == (2, 1) and "--force" in result.err
    assert keys["alice.key"].read_bytes() == before
    assert run_cli("keygen", tmp_path / "alice", "--force").code == 0
    assert keys["alice.key"].read_bytes() != before
    assert stat.S_IMODE(keys["alice.key"].stat().st_mode) == 0o600


@pytest.mark.parametrize("curve", ["p256", "p384", "p521"])
@pytest.mark.parametrize("password", [None, "correct horse"])
def test_round_trip_for_each_curve(
    run_cli: Run,
    release_manifest: Path,
    copy_of_release: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    curve: str,
    password: str | None,
) -> None:
    if password:
        monkeypatch.setenv("PROVENANCE_KEY_PASSWORD", password)
    assert run_cli("keygen", tmp_path / "k", "--curve", curve, *(["--encrypt"] if password else [])).code == 0
    assert (b"ENCRYPTED" in (tmp_path / "k.key").read_bytes()) == bool(password)
    result = run_cli("sign", release_manifest, "--key", tmp_path / "k.key", "-o", tmp_path / "s.sig")
    assert result.code == 0, result.err
    result, report = verify(run_cli, copy_of_release, tmp_path / "s.sig", "--key", tmp_path / "k.pub")
    assert (result.code, report["verdict"], report["signature"]["status"]) == (0, "identical", "valid")
    assert report["signature"]["signer"] == "k.pub"
    assert "sample-release" in report["signature"]["detail"]


def test_wrong_password_is_one_clear_line(
    run_cli: Run, release_manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROVENANCE_KEY_PASSWORD", "right")
    assert run_cli("keygen", tmp_path / "k", "--encrypt").code == 0
    monkeypatch.setenv("PROVENANCE_KEY_PASSWORD", "wrong")
    result = run_cli("sign", release_manifest, "--key", tmp_path / "k.key", "-o", tmp_path / "s.sig")
    assert (result.code, result.err.count("\n")) == (2, 1) and "password" in result.err
    assert not (tmp_path / "s.sig").exists()


def test_signed_manifest_without_key_is_untrusted_with_a_warning(
    run_cli: Run, signed: Path, copy_of_release: Path
) -> None:
    result, report = verify(run_cli, copy_of_release, signed)
    assert (result.code, report["verdict"], report["signature"]["status"]) == (0, "identical", "untrusted")
    assert "unknown key" in result.err


def test_trusted_key_folder_names_the_signer(
    run_cli: Run, signed: Path, copy_of_release: Path, keys: dict[str, Path], tmp_path: Path
) -> None:
    import os

    trusted = Path(os.environ["XDG_CONFIG_HOME"]) / "weights-provenance" / "trusted_keys"
    trusted.mkdir(parents=True)
    shutil.copyfile(keys["alice.pub"], trusted / "alice-release-team.pub")
    result, report = verify(run_cli, copy_of_release, signed)
    assert (result.code, report["signature"]["status"]) == (0, "valid")
    assert report["signature"]["signer"] == "alice-release-team"


def test_trust_policy_requires_a_trusted_signature(
    run_cli: Run, signed: Path, release_manifest: Path, copy_of_release: Path
) -> None:
    import os

    policy = Path(os.environ["XDG_CONFIG_HOME"]) / "weights-provenance" / "policy.json"
    policy.parent.mkdir(parents=True)
    policy.write_text('{"require_trusted_signature": true}')
    for manifest in (signed, release_manifest):
        result, _ = verify(run_cli, copy_of_release, manifest)
        assert (result.code, result.err.count("\n")) == (3, 1), result.err


def test_verdict_still_follows_the_content_under_a_valid_signature(
    run_cli: Run, signed: Path, copy_of_release: Path, keys: dict[str, Path]
) -> None:
    (copy_of_release / "model-00003-of-00003.safetensors").unlink()
    result, report = verify(run_cli, copy_of_release, signed, "--key", keys["alice.pub"])
    assert (result.code, report["verdict"], report["signature"]["status"]) == (1, "incomplete", "valid")


def _swap_digest(statement: dict[str, Any]) -> None:
    resources = statement["predicate"]["resources"]
    resources[0]["digest"], resources[1]["digest"] = resources[1]["digest"], resources[0]["digest"]


def _rename_subject(statement: dict[str, Any]) -> None:
    statement["subject"][0]["name"] = "official-release"


def _add_resource(statement: dict[str, Any]) -> None:
    statement["predicate"]["resources"].append({"algorithm": "sha256", "digest": "0" * 64, "name": "zz.bin"})


def _drop_resource(statement: dict[str, Any]) -> None:
    statement["predicate"]["resources"].pop()


def _change_one_byte(path: Path) -> None:
    bundle = bundle_of(path)
    payload = bytearray(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    at = payload.index(b'"digest"') + 20
    payload[at] = ord("0") if payload[at] != ord("0") else ord("1")
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(bytes(payload)).decode()
    path.write_text(json.dumps(bundle))


def _set(field: str, value: Any) -> Callable[[Path], None]:
    def mutate(path: Path) -> None:
        bundle = bundle_of(path)
        node = bundle
        *parents, last = field.split(".")
        for key in parents:
            node = node[key]
        node[last] = value
        path.write_text(json.dumps(bundle))

    return mutate


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


TAMPERING: dict[str, Callable[[Path], None]] = {
    "payload-byte-changed": _change_one_byte,
    "resource-digest-swapped": lambda p: rewrite_payload(p, _swap_digest),
    "subject-renamed": lambda p: rewrite_payload(p, _rename_subject),
    "resource-added": lambda p: rewrite_payload(p, _add_resource),
    "resource-removed": lambda p: rewrite_payload(p, _drop_resource),
    "payload-type-changed": _set("dsseEnvelope.payloadType", "application/json"),
    "unknown-media-type": _set("mediaType", "application/vnd.dev.sigstore.bundle.v0.9+json"),
    "hint-not-the-key": _set("verificationMaterial.publicKey.hint", "ab" * 32),
    "truncated-bundle": _truncate,
    "two-signatures": _set("dsseEnvelope.signatures", [{"sig": "AAAA", "keyid": ""}] * 2),
    "signature-not-base64": _set("dsseEnvelope.signatures", [{"sig": "***", "keyid": ""}]),
}


@pytest.mark.parametrize("tamper", list(TAMPERING.values()), ids=list(TAMPERING))
def test_tampered_bundles_exit_3_with_one_line(
    run_cli: Run, signed: Path, copy_of_release: Path, keys: dict[str, Path], tamper: Callable[[Path], None]
) -> None:
    tamper(signed)
    result, _ = verify(run_cli, copy_of_release, signed, "--key", keys["alice.pub"])
    assert result.code == 3, result.err
    assert result.out != ""
    json_error_or_nothing(result)  # --json: the error as JSON
    assert result.err.startswith("error: ") and result.err.count("\n") == 1


def test_signature_of_another_key(
    run_cli: Run, release_manifest: Path, copy_of_release: Path, keys: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "by-mallory.sig"
    assert run_cli("sign", release_manifest, "--key", keys["mallory.key"], "-o", out).code == 0
    result, _ = verify(run_cli, copy_of_release, out, "--key", keys["alice.pub"])
    assert result.code == 3 and "not by the key given" in result.err


def test_signature_moved_onto_another_key_hint(
    run_cli: Run, release_manifest: Path, copy_of_release: Path, keys: dict[str, Path], tmp_path: Path
) -> None:
    """Mallory's signature relabelled with Alice's hint: found by hint, then refused by the math."""
    out = tmp_path / "relabelled.sig"
    assert run_cli("sign", release_manifest, "--key", keys["mallory.key"], "-o", out).code == 0
    from manifests.keys import load_verifier

    _set("verificationMaterial.publicKey.hint", load_verifier(keys["alice.pub"]).hint)(out)
    result, _ = verify(run_cli, copy_of_release, out, "--key", keys["alice.pub"])
    assert result.code == 3 and "does not verify" in result.err


def test_unsigned_manifest_with_key_is_refused(
    run_cli: Run, release_manifest: Path, copy_of_release: Path, keys: dict[str, Path]
) -> None:
    result, _ = verify(run_cli, copy_of_release, release_manifest, "--key", keys["alice.pub"])
    assert (result.code, result.err.count("\n")) == (3, 1) and "unsigned" in result.err


def _dated(manifest: Path, created: str, out: Path) -> Path:
    statement = json.loads(manifest.read_text())
    statement["predicate"]["weights_provenance/v1"]["release"]["created"] = created
    out.write_text(json.dumps(statement))
    return out


def test_older_manifest_of_the_same_release_is_not_accepted_as_current(
    run_cli: Run, release_manifest: Path, copy_of_release: Path, keys: dict[str, Path], tmp_path: Path
) -> None:
    for label, date in (("old", "2025-01-01T00:00:00Z"), ("new", "2026-06-01T00:00:00Z")):
        unsigned = _dated(release_manifest, date, tmp_path / f"{label}.json")
        assert run_cli("sign", unsigned, "--key", keys["alice.key"], "-o", tmp_path / f"{label}.sig").code == 0
    result, report = verify(run_cli, copy_of_release, tmp_path / "new.sig", "--key", keys["alice.pub"])
    assert (result.code, report["signature"]["status"]) == (0, "valid")
    result, _ = verify(run_cli, copy_of_release, tmp_path / "old.sig", "--key", keys["alice.pub"])
    assert result.code == 3
    assert "2025-01-01T00:00:00Z" in result.err and "2026-06-01T00:00:00Z" in result.err
    result, report = verify(run_cli, copy_of_release, tmp_path / "old.sig", "--key", keys["alice.pub"], "--allow-older")
    assert (result.code, report["signature"]["status"]) == (0, "valid")
    assert "2025-01-01T00:00:00Z" in result.err


def test_signed_manifest_naming_a_path_outside_is_refused(
    run_cli: Run, release_manifest: Path, copy_of_release: Path, keys: dict[str, Path], tmp_path: Path
) -> None:
    """A hostile publisher's validly signed manifest still may not name ../outside.txt."""
    statement = json.loads(release_manifest.read_text())
    statement["predicate"].pop("weights_provenance/v1")
    statement["predicate"]["resources"].append({"algorithm": "sha256", "digest": "0" * 64, "name": "../outside.txt"})
    from manifests.model import subject_digest

    statement["subject"][0]["digest"]["sha256"] = subject_digest(statement["predicate"]["resources"])
    bundle = make_bundle(json.dumps(statement).encode(), load_signer(keys["alice.key"]))
    (tmp_path / "hostile.sig").write_text(json.dumps(bundle))
    result, _ = verify(run_cli, copy_of_release, tmp_path / "hostile.sig", "--key", keys["alice.pub"])
    assert result.code == 3 and "climbs out" in result.err and result.err.count("\n") == 1


@needs_model_signing
def test_our_signature_verifies_with_model_signing(signed: Path, release_dir: Path, keys: dict[str, Path]) -> None:
    result = subprocess.run(
        [
            str(MODEL_SIGNING),
            "verify",
            "key",
            str(release_dir),
            "--signature",
            str(signed),
            "--public_key",
            str(keys["alice.pub"]),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Verification succeeded" in result.stdout + result.stderr


@needs_model_signing
def test_model_signing_signature_verifies_here_at_file_level(
    run_cli: Run, release_dir: Path, copy_of_release: Path, keys: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "model.sig"
    result = subprocess.run(
        [
            str(MODEL_SIGNING),
            "sign",
            "key",
            str(release_dir),
            "--private_key",
            str(keys["alice.key"]),
            "--signature",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    result, report = verify(run_cli, copy_of_release, out, "--key", keys["alice.pub"])
    assert (result.code, report["verdict"], report["signature"]["status"]) == (0, "identical", "valid")
    assert report["tensors"] == []
    assert "no tensor-level data was signed" in result.err
    (copy_of_release / "config.json").write_text("{}")
    result, report = verify(run_cli, copy_of_release, out, "--key", keys["alice.pub"])
    assert (result.code, report["verdict"]) == (1, "modified")


GOLDEN = Path(__file__).resolve().parents[1] / "golden"


@pytest.mark.parametrize("name", ["model_signing-1.1.1", "provenance-v1"])
def test_golden_signatures_verify_forever(run_cli: Run, name: str) -> None:
    """Signatures made once by model_signing 1.1.1 and by our first format: a format change must keep these."""
    result, report = verify(run_cli, GOLDEN / "model", GOLDEN / f"{name}.sig", "--key", GOLDEN / f"{name}.pub")
    assert (result.code, report["verdict"], report["signature"]["status"]) == (0, "identical", "valid")
    assert {f["name"]: f["status"] for f in report["files"]} == {"config.json": "match", "model.safetensors": "match"}
    expected_tensors = {} if name.startswith("model_signing") else {"match": 3}
    assert report["summary"]["tensors"] == expected_tensors


@needs_model_signing
def test_golden_signature_of_ours_verifies_with_model_signing() -> None:
    result = subprocess.run(
        [
            str(MODEL_SIGNING),
            "verify",
            "key",
            str(GOLDEN / "model"),
            "--signature",
            str(GOLDEN / "provenance-v1.sig"),
            "--public_key",
            str(GOLDEN / "provenance-v1.pub"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_download_file_resolving_outside_through_a_symlink_is_refused(
    run_cli: Run, signed: Path, copy_of_release: Path, keys: dict[str, Path], tmp_path: Path
) -> None:
    """A mirror that swaps a release file for a symlink to elsewhere on disk is never read through it."""
    outside = tmp_path / "elsewhere.json"
    outside.write_bytes((copy_of_release / "config.json").read_bytes())
    (copy_of_release / "config.json").unlink()
    (copy_of_release / "config.json").symlink_to(outside)
    result, _ = verify(run_cli, copy_of_release, signed, "--key", keys["alice.pub"])
    assert (result.code, result.err.count("\n")) == (2, 1) and "leaves the checkpoint" in result.err


def test_diff_checks_signatures_as_verify_does(
    run_cli: Run, signed: Path, release_dir: Path, keys: dict[str, Path]
) -> None:
    import os

    result = run_cli("diff", signed, release_dir, "--json", "-q")
    report = json.loads(result.out)
    assert (result.code, report["verdict"], report["signature"]["status"]) == (0, "identical", "untrusted")
    assert "NOT checked" in result.err
    trusted = Path(os.environ["XDG_CONFIG_HOME"]) / "weights-provenance" / "trusted_keys"
    trusted.mkdir(parents=True)
    shutil.copyfile(keys["alice.pub"], trusted / "alice.pub")
    result = run_cli("diff", signed, release_dir, "--json", "-q")
    assert (result.code, json.loads(result.out)["signature"]["status"]) == (0, "valid")
    rewrite_payload(signed, _rename_subject)
    result = run_cli("diff", signed, release_dir, "--json", "-q")
    assert result.code == 3
    json_error_or_nothing(result)  # --json: the error as JSON


# ---------------------------------------------------------------- within 60 s and 1 GiB (tests/support/limits.py)


def test_bundle_whose_payload_holds_many_tiny_values_is_refused_within_bounds(checkpoint: Path, tmp_path: Path) -> None:
    payload = b'{"x":[' + b"[]," * ((90 << 20) // 3) + b"[]]}"
    bundle = {
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"publicKey": {"hint": "0" * 64}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode("ascii"),
            "payloadType": "application/vnd.in-toto+json",
            "signatures": [{"sig": base64.b64encode(b"x" * 64).decode("ascii"), "keyid": ""}],
        },
    }
    path = tmp_path / "hostile.sig"
    path.write_text(json.dumps(bundle))
    run = bounded("verify", checkpoint, "--manifest", path)
    assert run.code in (2, 3), run.err
    assert run.err.strip().splitlines()[-1].startswith("error:"), run.err
    assert "too many JSON values" in run.err, run.err
