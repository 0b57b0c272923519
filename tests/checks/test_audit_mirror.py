"""`provenance audit` and `fingerprint hf://`: the real huggingface_hub client against the hub-compatible
server in tests/support/hubserver.py, and the local cache made by the real hf_hub_download / snapshot_download."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from provenance._sample import sample_tensors, write_sharded
from tests.conftest import CliResult, write_release_manifest
from tests.support.hubserver import FakeHub
from tests.support.references import json_error_or_nothing

Run = Callable[..., CliResult]
SHARD = "model-00002-of-00003.safetensors"


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def chunk_manifest(release_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_release_manifest(release_dir, tmp_path_factory.mktemp("audit") / "release.json", 16 << 10)


def changed_tensor(release: Path) -> bytes:
    """The release's second shard with one byte of one tensor changed (same size, same header)."""
    data = bytearray((release / SHARD).read_bytes())
    data[70_000] ^= 0x01
    return bytes(data)


def resharded(release: Path, tmp_path: Path) -> dict[str, bytes]:
    folder = tmp_path / "resharded"
    write_sharded(folder, sample_tensors(), 2)
    for name in ("config.json", "tokenizer.json", "tokenizer.model"):
        if (release / name).exists():
            (folder / name).write_bytes((release / name).read_bytes())
    return files_of(folder)


def noisy(release: Path) -> bytes:
    """The second shard with every tensor's values changed, header untouched: what a liar would serve."""
    data = bytearray((release / SHARD).read_bytes())
    header = 8 + int.from_bytes(data[:8], "little")
    noise = np.random.default_rng(3).integers(0, 256, len(data) - header, dtype=np.uint8).tobytes()
    return bytes(data[:header]) + noise


def audit_json(run_cli: Run, *args: str | Path) -> tuple[int, dict[str, Any]]:
    result = run_cli("audit", *args, "--json")
    assert result.out, result.err
    document: dict[str, Any] = json.loads(result.out)
    return result.code, document


def statuses(document: dict[str, Any]) -> dict[str, str]:
    return {f["name"]: f["status"] for f in document["files"]}


# ---------------------------------------------------------------- one mirror, each level of evidence


def test_identical_mirror_from_metadata_alone(
    run_cli: Run, hub: FakeHub, release_dir: Path, chunk_manifest: Path
) -> None:
    hub.add_repo("org/mirror", files_of(release_dir))
    code, document = audit_json(run_cli, "hf://org/mirror", "--manifest", chunk_manifest)
    assert (code, document["verdict"]) == (0, "identical")
    assert document["evidence"].startswith("metadata (sizes and the uploader's sha256 claims, not a proof)")
    assert "sampled" not in document["evidence"] and "all bytes" not in document["evidence"]
    weights = [f for f in document["files"] if f["name"].endswith(".safetensors")]
    assert {f["detail"] for f in weights} == {"the hub's sha256 claim matches"}
    mirror = document["mirror"]
    assert mirror["repo"] == "org/mirror" and mirror["revision"] == "main" and len(mirror["commit"]) == 40
    requests, _ = hub.stats("org/mirror")
    assert mirror["requests"] <= requests <= 8  # model info plus the small files kept in git, nothing else
    small = sum(len(v) for k, v in files_of(release_dir).items() if not k.endswith((".safetensors", ".model")))
    assert mirror["bytes"] == small


def test_one_tensor_changed_is_modified_from_its_header(
    run_cli: Run, hub: FakeHub, release_dir: Path, chunk_manifest: Path
) -> None:
    files = files_of(release_dir) | {SHARD: changed_tensor(release_dir)}
    hub.add_repo("org/changed", files)
    code, document = audit_json(run_cli, "hf://org/changed", "--manifest", chunk_manifest)
    assert (code, document["verdict"]) == (1, "modified")
    changed = {f["name"]: f for f in document["files"]}[SHARD]
    assert (changed["status"], changed["detail"]) == (
        "modified",
        "same header, tensor bytes differ (by the hub's sha256)",
    )
    assert "safetensors headers of 1 file" in document["evidence"]

    code, full = audit_json(run_cli, "hf://org/changed", "--manifest", chunk_manifest, "--full")
    assert (code, full["verdict"]) == (1, "modified")
    assert [t["name"] for t in full["tensors"] if t["status"] == "modified"] == ["model.layers.2.mlp.down_proj.weight"]
    assert full["evidence"].startswith("all bytes: every file streamed from the hub and hashed, nothing kept")


def test_resharded_mirror_is_undecided_from_metadata_and_equivalent_in_full(
    run_cli: Run, hub: FakeHub, release_dir: Path, release_manifest: Path, tmp_path: Path
) -> None:
    hub.add_repo("org/resharded", resharded(release_dir, tmp_path))
    code, document = audit_json(run_cli, "hf://org/resharded", "--manifest", release_manifest)
    assert (code, document["verdict"]) == (1, "undecided")
    assert any(
        re.match(r"the mirror adds \d+ weights files? whose values were not read", r) for r in document["reasons"]
    )
    assert "safetensors headers of 2 files" in document["evidence"]
    code, full = audit_json(run_cli, "hf://org/resharded", "--manifest", release_manifest, "--full")
    assert (code, full["verdict"]) == (0, "equivalent")


def test_a_mirror_lying_about_its_bytes(run_cli: Run, hub: FakeHub, release_dir: Path, chunk_manifest: Path) -> None:
    """The metadata claims the release's sha256 while the bytes served differ: metadata cannot see it,
    a spot check finds it (here with a fixed seed; 8 samples of 25 chunks, 9 of them changed: p > 0.99),
    streaming everything always does."""
    hub.add_repo("org/liar", files_of(release_dir), served={SHARD: noisy(release_dir)})
    code, document = audit_json(run_cli, "hf://org/liar", "--manifest", chunk_manifest)
    assert (code, document["verdict"]) == (0, "identical")  # the claim is all metadata can show, and it says so
    assert "not a proof" in document["evidence"]
    code, sampled = audit_json(
        run_cli, "hf://org/liar", "--manifest", chunk_manifest, "--spot-check", "8", "--seed", "1"
    )
    assert (code, sampled["verdict"]) == (1, "modified")
    assert statuses(sampled)[SHARD] == "modified"
    assert "8 sampled chunks" in sampled["evidence"]
    code, full = audit_json(run_cli, "hf://org/liar", "--manifest", chunk_manifest, "--full")
    assert (code, full["verdict"]) == (1, "modified")


def test_spot_check_by_tensor_without_chunk_hashes(
    run_cli: Run, hub: FakeHub, release_dir: Path, release_manifest: Path
) -> None:
    hub.add_repo("org/liar", files_of(release_dir), served={SHARD: noisy(release_dir)})
    code, document = audit_json(
        run_cli, "hf://org/liar", "--manifest", release_manifest, "--spot-check", "10", "--seed", "4"
    )
    assert (code, document["verdict"]) == (1, "modified")
    assert "10 sampled tensors" in document["evidence"]
    assert {t["status"] for t in document["tensors"]} == {"modified"}
    assert all(t["detail"] == "sampled: values differ" for t in document["tensors"])


def test_missing_repo_and_revision_are_one_clear_line(run_cli: Run, hub: FakeHub, release_manifest: Path) -> None:
    hub.add_repo("org/exists", {"config.json": b"{}"})
    result = run_cli("audit", "hf://org/absent", "--manifest", release_manifest)
    assert result.code == 2
    assert result.err.strip().splitlines()[-1].startswith("error: hf://org/absent: no such repository at ")
    result = run_cli("audit", "hf://org/exists@v9", "--manifest", release_manifest)
    assert result.code == 2
    assert "error: hf://org/exists@v9: no revision 'v9' in org/exists" in result.err
    assert "Traceback" not in result.err
    result = run_cli("audit", "hf://not a repo", "--manifest", release_manifest)
    assert result.code == 2 and "is not a hub repository" in result.err


def test_dropped_connections_are_retried(run_cli: Run, hub: FakeHub, release_dir: Path, chunk_manifest: Path) -> None:
    hub.add_repo("org/mirror", files_of(release_dir))
    hub.drop_next = 2
    code, document = audit_json(run_cli, "hf://org/mirror", "--manifest", chunk_manifest)
    assert (code, document["verdict"]) == (0, "identical")
    assert hub.drop_next == 0


def test_a_server_that_keeps_failing_gives_an_error_never_a_verdict(
    run_cli: Run, hub: FakeHub, release_dir: Path, chunk_manifest: Path
) -> None:
    hub.add_repo("org/mirror", files_of(release_dir))
    hub.drop_next = 1000
    result = run_cli("audit", "hf://org/mirror", "--manifest", chunk_manifest, "--json")
    assert result.code == 2 and result.out != ""
    json_error_or_nothing(result)  # --json: the error as JSON
    assert "failed 4 times" in result.err and "retry later" in result.err


def test_a_server_that_ignores_range_gives_an_error(
    run_cli: Run, hub: FakeHub, release_dir: Path, chunk_manifest: Path
) -> None:
    hub.add_repo("org/mirror", files_of(release_dir))
    hub.ignore_range = True
    result = run_cli("audit", "hf://org/mirror", "--manifest", chunk_manifest, "--spot-check", "4", "--json")
    assert result.code == 2 and result.out != ""
    json_error_or_nothing(result)  # --json: the error as JSON
    assert "the server ignored the Range request" in result.err


# ---------------------------------------------------------------- many mirrors


def test_many_mirrors_and_search(
    run_cli: Run, hub: FakeHub, release_dir: Path, chunk_manifest: Path, tmp_path: Path
) -> None:
    files = files_of(release_dir)
    hub.add_repo("org/llama-good", files)
    hub.add_repo("org/llama-changed", files | {SHARD: changed_tensor(release_dir)})
    hub.add_repo("other/llama-resharded", resharded(release_dir, tmp_path))
    hub.add_repo("org/unrelated-name", files)
    code, document = audit_json(run_cli, "--search", "llama", "--manifest", chunk_manifest)
    assert code == 1
    verdicts = {m["repo"]: m["verdict"] for m in document["mirrors"]}
    assert verdicts == {
        "hf://org/llama-good": "identical",
        "hf://org/llama-changed": "modified",
        "hf://other/llama-resharded": "undecided",
    }
    table = run_cli("audit", "hf://org/llama-good", "hf://org/missing", "--manifest", chunk_manifest)
    assert table.code == 2
    lines = table.out.splitlines()
    assert lines[0].split() == ["mirror", "verdict", "requests", "bytes", "evidence"]
    assert lines[1].split()[:2] == ["hf://org/llama-good", "identical"]
    assert lines[2].split()[:2] == ["hf://org/missing", "error"]


# ---------------------------------------------------------------- the local cache


def test_cache_audit_catches_same_size_corruption(
    run_cli: Run, hub: FakeHub, release_dir: Path, chunk_manifest: Path, tmp_path: Path
) -> None:
    from huggingface_hub import hf_hub_download, snapshot_download

    hub.add_repo("org/mirror", files_of(release_dir))
    hub.add_repo("org/other", {"config.json": b'{"x": 1}', "weights.safetensors": (release_dir / SHARD).read_bytes()})
    cache = tmp_path / "cache"
    snapshot = Path(snapshot_download("org/mirror", cache_dir=cache, endpoint=hub.endpoint))
    hf_hub_download("org/other", "config.json", cache_dir=cache, endpoint=hub.endpoint)
    result = run_cli("audit", "cache", "--cache-dir", cache, "--manifest", chunk_manifest, "--json")
    assert result.code == 0, result.err
    rows = {s["repo"]: s for s in json.loads(result.out)["snapshots"]}
    assert rows["org/mirror"]["verdict"] == "identical" and rows["org/mirror"]["corrupt"] == []
    assert rows["org/other"]["verdict"] is None and rows["org/other"]["reference"] is None

    blob = (snapshot / SHARD).resolve()
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: the client's own size check cannot see it
    os.chmod(blob, 0o644)
    blob.write_bytes(bytes(data))
    result = run_cli("audit", "cache", "--cache-dir", cache, "--manifest", chunk_manifest, "--json")
    assert result.code == 1
    row = {s["repo"]: s for s in json.loads(result.out)["snapshots"]}["org/mirror"]
    assert [c["file"] for c in row["corrupt"]] == [SHARD]
    assert row["corrupt"][0]["detail"].startswith("its bytes hash to sha256 ")
    assert row["verdict"] == "modified"
    table = run_cli("audit", "cache", "--cache-dir", cache, "--manifest", chunk_manifest)
    assert table.code == 1
    assert "corrupt: org/mirror@" in table.err and SHARD in table.err


def test_cache_audit_without_a_cache(run_cli: Run, tmp_path: Path) -> None:
    result = run_cli("audit", "cache", "--cache-dir", tmp_path / "none")
    assert result.code == 2 and result.err.startswith("error: no hub cache at ")


# ---------------------------------------------------------------- fingerprint hf://


def test_fingerprint_a_repository(run_cli: Run, hub: FakeHub, release_dir: Path, tmp_path: Path) -> None:
    hub.add_repo("org/release", files_of(release_dir))
    metadata = tmp_path / "meta.json"
    assert run_cli("fingerprint", "hf://org/release", "-o", metadata).code == 0
    files = json.loads(metadata.read_text())["predicate"]["weights_provenance/v1"]["files"]
    assert all("tensors" not in f for f in files)  # file level: sizes and sha256 from the metadata
    result = run_cli("verify", release_dir, "--manifest", metadata, "--json")
    assert (result.code, json.loads(result.out)["verdict"]) == (0, "identical")

    full = tmp_path / "full.json"
    assert run_cli("fingerprint", "hf://org/release", "--full", "-o", full).code == 0
    local = tmp_path / "local.json"
    assert run_cli("fingerprint", release_dir, "-o", local).code == 0
    entries = lambda p: json.loads(p.read_text())["predicate"]["weights_provenance/v1"]["files"]  # noqa: E731
    assert entries(full) == entries(local)


def test_tokens_are_used_but_never_shown(
    run_cli: Run, hub: FakeHub, release_dir: Path, chunk_manifest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "hf_" + "s3cr3t" * 6
    monkeypatch.setenv("HF_TOKEN", secret)
    hub.add_repo("org/mirror", files_of(release_dir))
    result = run_cli("audit", "hf://org/mirror", "--manifest", chunk_manifest, "--json", "--spot-check", "2")
    assert result.code == 0
    missing = run_cli("audit", "hf://org/absent", "--manifest", chunk_manifest)
    assert secret not in result.out + result.err + missing.out + missing.err
    assert any(r.headers.get("authorization") == f"Bearer {secret}" for r in hub.log if r.server == "hub")


# ---------------------------------------------------------------- what review found


def test_an_added_weights_file_is_never_identical(
    run_cli: Run, hub: FakeHub, release_dir: Path, chunk_manifest: Path
) -> None:
    from safetensors.numpy import save

    extra = save({"backdoor.weight": np.ones((4, 4), dtype=np.float16)})
    hub.add_repo("org/extra", files_of(release_dir) | {"extra.safetensors": extra})
    for flags in ((), ("--spot-check", "2", "--seed", "0")):
        code, document = audit_json(run_cli, "hf://org/extra", "--manifest", chunk_manifest, *flags)
        assert (code, document["verdict"]) == (1, "modified"), flags
        assert any(t["name"] == "backdoor.weight" and t["status"] == "extra" for t in document["tensors"])


def test_a_header_that_contradicts_the_claimed_sha256(
    run_cli: Run, hub: FakeHub, release_dir: Path, release_manifest: Path
) -> None:
    """Bytes served under the release's sha256 whose header reshapes tensors: the header shows the lie."""
    data = (release_dir / SHARD).read_bytes()
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length])
    name = next(n for n, v in header.items() if n != "__metadata__" and v["shape"] == [128, 64])
    header[name]["shape"] = [64, 128]
    text = json.dumps(header, separators=(",", ":")).encode().ljust(length)
    hub.add_repo("org/reshaped", files_of(release_dir), served={SHARD: data[:8] + text + data[8 + length :]})
    code, document = audit_json(run_cli, "hf://org/reshaped", "--manifest", release_manifest, "--spot-check", "3")
    assert (code, document["verdict"]) == (1, "modified")
    changed = {f["name"]: f for f in document["files"]}[SHARD]
    assert changed["detail"] == "its header differs from the release's: the sha256 claim is false"


def test_a_short_shard_is_incomplete_from_its_header(
    run_cli: Run, hub: FakeHub, release_dir: Path, release_manifest: Path
) -> None:
    data = (release_dir / SHARD).read_bytes()
    hub.add_repo("org/short", files_of(release_dir) | {SHARD: data[: len(data) // 2]})
    code, document = audit_json(run_cli, "hf://org/short", "--manifest", release_manifest)
    assert (code, document["verdict"]) == (1, "incomplete")
    short = {f["name"]: f for f in document["files"]}[SHARD]
    assert (short["status"], short["detail"]) == ("corrupt", f"cut short: {len(data) // 2:,} of {len(data):,} bytes")


def test_full_audit_of_a_pytorch_mirror(run_cli: Run, hub: FakeHub, tmp_path: Path) -> None:
    """A container indexed at its end is spooled while it streams: the same numbers read `equivalent`."""
    torch = pytest.importorskip("torch", reason="torch.save writes the mirror's pytorch_model.bin")
    from safetensors.torch import save_file

    state = {"embed.weight": torch.arange(12.0).reshape(3, 4), "norm.weight": torch.ones(4, dtype=torch.float16)}
    (tmp_path / "release").mkdir()
    save_file(state, str(tmp_path / "release" / "model.safetensors"))
    manifest = tmp_path / "m.json"
    assert run_cli("fingerprint", tmp_path / "release", "-o", manifest, "-q").code == 0
    torch.save(state, tmp_path / "pytorch_model.bin")
    hub.add_repo("org/pytorch", {"pytorch_model.bin": (tmp_path / "pytorch_model.bin").read_bytes()})
    code, document = audit_json(run_cli, "hf://org/pytorch", "--manifest", manifest, "--full")
    assert (code, document["verdict"]) == (0, "equivalent")


def test_fingerprint_of_a_repository_leaves_out_git_files(
    run_cli: Run, hub: FakeHub, release_dir: Path, tmp_path: Path
) -> None:
    hub.add_repo("org/release", files_of(release_dir) | {".gitattributes": b"*.safetensors filter=lfs\n"})
    manifest = tmp_path / "hub.json"
    assert run_cli("fingerprint", "hf://org/release", "-o", manifest).code == 0
    code, document = audit_json(run_cli, "hf://org/release", "--manifest", manifest)
    assert (code, document["verdict"]) == (0, "identical")
    assert ".gitattributes" not in statuses(document)


def test_cache_audit_of_a_damaged_cache(
    run_cli: Run, hub: FakeHub, release_dir: Path, chunk_manifest: Path, tmp_path: Path
) -> None:
    from huggingface_hub import snapshot_download

    hub.add_repo("org/mirror", files_of(release_dir))
    cache = tmp_path / "cache"
    snapshot = Path(snapshot_download("org/mirror", cache_dir=cache, endpoint=hub.endpoint))
    (snapshot / SHARD).resolve().unlink()  # a blob gone: the scanner calls the repository damaged
    result = run_cli("audit", "cache", "--cache-dir", cache, "--manifest", chunk_manifest)
    assert result.code == 1
    assert "corrupt: " in result.err
    a_file = tmp_path / "not-a-cache"
    a_file.write_text("x")
    result = run_cli("audit", "cache", "--cache-dir", a_file)
    assert result.code == 2 and result.err.startswith("error: ") and result.err.count("\n") == 1


def test_a_mirror_adding_code_is_modified_from_metadata_and_in_full(
    run_cli: Run, hub: FakeHub, release_dir: Path, release_manifest: Path
) -> None:
    """Files a framework may pick up (here remote code) are part of what loads: the release has none."""
    hub.add_repo("org/code", {**files_of(release_dir), "modeling_llama.py": b"import os\n", "NOTES.md": b"hi\n"})
    code, document = audit_json(run_cli, "hf://org/code", "--manifest", release_manifest)
    assert (code, document["verdict"]) == (1, "modified")
    assert "the mirror adds 1 file a loader may pick up: modeling_llama.py" in document["reasons"]
    code, full = audit_json(run_cli, "hf://org/code", "--manifest", release_manifest, "--full")
    assert (code, full["verdict"]) == (1, "modified")
    assert "1 file added: modeling_llama.py" in full["reasons"]


def test_a_mirror_whose_index_redirects_a_tensor(
    run_cli: Run, hub: FakeHub, release_dir: Path, release_manifest: Path
) -> None:
    """The weights are the release's bytes, but the index sends a tensor to a shard that does not hold it:
    metadata cannot tell where a loader goes; --full reads the index and says modified."""
    files = files_of(release_dir)
    index_name = next(name for name in files if name.endswith(".index.json"))
    index = json.loads(files[index_name])
    tensor, shard = next(iter(index["weight_map"].items()))
    index["weight_map"][tensor] = next(s for s in sorted(set(index["weight_map"].values())) if s != shard)
    hub.add_repo("org/redirect", {**files, index_name: json.dumps(index).encode()})
    code, document = audit_json(run_cli, "hf://org/redirect", "--manifest", release_manifest)
    assert (code, document["verdict"]) == (1, "undecided")
    said = f"the mirror's shard index ({index_name}) is not the release's"
    assert any(r.startswith(said) for r in document["reasons"])
    code, full = audit_json(run_cli, "hf://org/redirect", "--manifest", release_manifest, "--full")
    assert (code, full["verdict"]) == (1, "modified")
    assert any(r.startswith(f"{index_name} sends 1 tensor where a loader would not load") for r in full["reasons"])


def test_a_mirror_adding_a_name_that_collides_with_a_release_file_is_modified(
    run_cli: Run, hub: FakeHub, release_dir: Path, chunk_manifest: Path
) -> None:
    """config.json and CONFIG.json are one file once downloaded onto a case-insensitive file system: which
    one a loader reads is not the release's to say, so even the metadata-only audit is not green."""
    files = files_of(release_dir)
    hub.add_repo("org/clash", files | {"CONFIG.json": files["config.json"]})
    code, document = audit_json(run_cli, "hf://org/clash", "--manifest", chunk_manifest)
    assert (code, document["verdict"]) == (1, "modified")
    first = document["reasons"][0]
    assert first.startswith("names that differ only in case or Unicode form (CONFIG.json and config.json)")
    assert {f["name"]: f["status"] for f in document["files"]}["config.json"] == "modified"
