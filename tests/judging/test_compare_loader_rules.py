"""Checkpoint-level rules of the promise: what a loader would load beside the release's own files.

Shard indexes are loading instructions (each entry must send a release tensor to a checked file holding
it), a tensor under another name is not found by a loader, and files added beside the weights may be
picked up: each case asserts the exact verdict and exit code, with controls that still pass.
"""

from __future__ import annotations

import json
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import provenance
from manifests import build_manifest
from provenance._checks.verify import verify_checkpoint
from provenance._sample import sample_tensors, write_sharded
from provenance.report import Verdict
from tests.conftest import CliResult
from tests.support.writers import cut_short

Run = Callable[..., CliResult]
INDEX = "model.safetensors.index.json"
SHARD2 = "model-00002-of-00003.safetensors"
VICTIM = "model.layers.2.mlp.up_proj.weight"  # lives in SHARD2 of the sample release


def verify(run_cli: Run, target: Path, manifest: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    result = run_cli("verify", target, "--manifest", manifest, "--json", "-q", *extra)
    assert "Traceback" not in result.err
    return result.code, json.loads(result.out)


def statuses(report: dict[str, Any], kind: str) -> dict[str, str]:
    return {entry["name"]: entry["status"] for entry in report[kind]}


def reasons(report: dict[str, Any]) -> str:
    return "\n".join(report["reasons"])


def point(folder: Path, tensor: str, target: str, index: str = INDEX) -> None:
    """Rewrite one entry of a shard index, as an attacker would."""
    document = json.loads((folder / index).read_text())
    document["weight_map"][tensor] = target
    (folder / index).write_text(json.dumps(document, indent=2))


def changed_copy(folder: Path, name: str) -> None:
    """A safetensors file holding other numbers for one release tensor."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tensor = sample_tensors()[VICTIM]
    save_file({VICTIM: (tensor + np.float16(1)).astype(np.float16)}, str(folder / name) if folder.is_dir() else name)


# -- 1. shard index redirects ---------------------------------------------------------------------------------


def test_index_pointing_into_the_git_folder_is_modified(
    run_cli: Run, copy_of_release: Path, release_manifest: Path
) -> None:
    (copy_of_release / ".git").mkdir()
    changed_copy(copy_of_release / ".git", "evil.safetensors")
    point(copy_of_release, VICTIM, ".git/evil.safetensors")
    code, report = verify(run_cli, copy_of_release, release_manifest)
    assert (code, report["verdict"]) == (1, "modified")
    assert f"{VICTIM} -> .git/evil.safetensors (a file this check does not read)" in reasons(report)
    assert statuses(report, "tensors")[VICTIM] == "match"  # the shard's copy is intact; the index is the change


@pytest.mark.parametrize(
    ("target", "why"),
    [
        ("../evil.safetensors", "outside the checkpoint"),
        ("/tmp/evil.safetensors", "outside the checkpoint"),
        ("model-00004-of-00003.safetensors", "no such file; the tensor is in another"),
        ("config.json", "that file does not hold it"),
        ("model-00001-of-00003.safetensors", "that file does not hold it"),
    ],
)
def test_index_pointing_a_tensor_elsewhere_is_modified(
    run_cli: Run, copy_of_release: Path, release_manifest: Path, target: str, why: str
) -> None:
    point(copy_of_release, VICTIM, target)
    code, report = verify(run_cli, copy_of_release, release_manifest)
    assert (code, report["verdict"]) == (1, "modified")
    assert f"{VICTIM} -> {target} ({why})" in reasons(report)
    assert statuses(report, "files")[INDEX] == "modified"


def test_index_pointing_to_another_copy_with_other_numbers_is_modified(
    run_cli: Run, copy_of_release: Path, release_manifest: Path
) -> None:
    changed_copy(copy_of_release, "patch.safetensors")
    point(copy_of_release, VICTIM, "patch.safetensors")
    code, report = verify(run_cli, copy_of_release, release_manifest)
    assert (code, report["verdict"]) == (1, "modified")
    assert f"{VICTIM} -> patch.safetensors (that file's copy is not the release's)" in reasons(report)
    assert "patch.safetensors" in statuses(report, "files")


def test_index_entry_for_a_tensor_the_release_lacks_is_modified(
    run_cli: Run, copy_of_release: Path, release_manifest: Path
) -> None:
    point(copy_of_release, "model.layers.9.mlp.up_proj.weight", SHARD2)
    code, report = verify(run_cli, copy_of_release, release_manifest)
    assert (code, report["verdict"]) == (1, "modified")
    assert f"model.layers.9.mlp.up_proj.weight -> {SHARD2} (not a tensor of the release)" in reasons(report)


def test_index_that_is_not_an_index_is_modified(run_cli: Run, copy_of_release: Path, release_manifest: Path) -> None:
    (copy_of_release / INDEX).write_text('{"weight_map": 3}')
    code, report = verify(run_cli, copy_of_release, release_manifest)
    assert (code, report["verdict"]) == (1, "modified")
    assert "no weight_map object" in reasons(report)


def test_index_missing_an_entry_is_modified(run_cli: Run, copy_of_release: Path, release_manifest: Path) -> None:
    document = json.loads((copy_of_release / INDEX).read_text())
    del document["weight_map"][VICTIM]
    (copy_of_release / INDEX).write_text(json.dumps(document))
    code, report = verify(run_cli, copy_of_release, release_manifest)
    assert (code, report["verdict"]) == (1, "modified")
    assert f"{INDEX} is what from_pretrained loads, and it does not hold 1 tensor of the release: {VICTIM}" in reasons(
        report
    )


def test_reshard_with_its_own_index_is_equivalent(run_cli: Run, copy_of_release: Path, release_manifest: Path) -> None:
    for path in copy_of_release.glob("model*"):
        path.unlink()
    write_sharded(copy_of_release, sample_tensors(), 2)
    code, report = verify(run_cli, copy_of_release, release_manifest)
    assert (code, report["verdict"]) == (0, "equivalent")


def test_cut_short_shard_of_a_reshard_is_still_incomplete(
    run_cli: Run, copy_of_release: Path, release_manifest: Path
) -> None:
    for path in copy_of_release.glob("model*"):
        path.unlink()
    write_sharded(copy_of_release, sample_tensors(), 2)
    cut_short(copy_of_release / "model-00002-of-00002.safetensors", 0.5)
    code, report = verify(run_cli, copy_of_release, release_manifest)
    assert (code, report["verdict"]) == (1, "incomplete")


# -- the same with real transformers: what is called equivalent is what from_pretrained loads ----------------


@pytest.fixture
def tiny_llama(tmp_path: Path) -> Path:
    torch = pytest.importorskip("torch", reason="the loader check needs torch")
    transformers = pytest.importorskip("transformers", reason="the loader check needs transformers")
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
    )
    model = transformers.LlamaForCausalLM(config)
    folder = tmp_path / "tiny"
    model.save_pretrained(folder, max_shard_size="8KB")
    assert (folder / INDEX).is_file()
    return folder


def loaded(folder: Path) -> dict[str, Any]:
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(folder)
    return {k: v.detach().numpy() for k, v in model.state_dict().items()}


def release_tensors(folder: Path) -> dict[str, Any]:
    tensors: dict[str, Any] = {}
    for shard in sorted(folder.glob("*.safetensors")):
        tensors.update(load_file(str(shard)))
    return tensors


def test_transformers_loads_what_equivalent_promises_and_follows_a_redirect(tiny_llama: Path, tmp_path: Path) -> None:
    manifest = build_manifest(provenance.fingerprint(tiny_llama), "tiny")
    reference = manifest.checkpoint
    original = release_tensors(tiny_llama)

    resharded = tmp_path / "resharded"
    shutil.copytree(tiny_llama, resharded)
    for path in resharded.glob("model*"):
        path.unlink()
    write_sharded(resharded, original, 3)
    report = verify_checkpoint(resharded, reference)
    assert report.verdict is Verdict.EQUIVALENT
    state = loaded(resharded)
    assert all(np.array_equal(state[name], value) for name, value in original.items())

    redirected = tmp_path / "redirected"
    shutil.copytree(tiny_llama, redirected)
    victim = "model.layers.0.mlp.up_proj.weight"
    (redirected / ".git").mkdir()
    save_file({victim: original[victim] + 1}, str(redirected / ".git" / "evil.safetensors"))
    point(redirected, victim, ".git/evil.safetensors")
    home = json.loads((tiny_llama / INDEX).read_text())["weight_map"][victim]
    kept = {k: v for k, v in load_file(str(redirected / home)).items() if k != victim}
    save_file(kept, str(redirected / home), metadata={"format": "pt"})
    assert np.array_equal(loaded(redirected)[victim], original[victim] + 1)  # transformers follows the index
    report = verify_checkpoint(redirected, reference)
    assert report.verdict is Verdict.MODIFIED
    assert any(f"{victim} -> .git/evil.safetensors (a file this check does not read)" in r for r in report.reasons)


def test_transformers_prefers_an_added_single_file_which_is_modified(tiny_llama: Path, tmp_path: Path) -> None:
    reference = provenance.fingerprint(tiny_llama)
    original = release_tensors(tiny_llama)
    candidate = tmp_path / "shadowed"
    shutil.copytree(tiny_llama, candidate)
    part = {k: v for k, v in original.items() if "layers.0." not in k}  # bit-identical copies, some left out
    save_file(part, str(candidate / "model.safetensors"))
    state = loaded(candidate)  # model.safetensors shadows the shards: layer 0 is initialised afresh
    assert not np.array_equal(state["model.layers.0.mlp.up_proj.weight"], original["model.layers.0.mlp.up_proj.weight"])
    report = verify_checkpoint(candidate, reference)
    assert report.verdict is Verdict.MODIFIED
    assert any(r.startswith("model.safetensors is what from_pretrained loads") for r in report.reasons)


# -- 2. renamed tensor ----------------------------------------------------------------------------------------


def test_tensor_under_another_name_is_modified(run_cli: Run, copy_of_release: Path, release_manifest: Path) -> None:
    shard = copy_of_release / SHARD2
    tensors = load_file(str(shard))
    tensors["model.layers.2.mlp.upper.weight"] = tensors.pop(VICTIM)
    save_file(tensors, str(shard), metadata={"format": "pt"})
    point(copy_of_release, VICTIM, SHARD2)
    code, report = verify(run_cli, copy_of_release, release_manifest)
    assert (code, report["verdict"]) == (1, "modified")
    (entry,) = [t for t in report["tensors"] if t["name"] == VICTIM]
    assert (entry["status"], entry["candidate_name"]) == ("modified", "model.layers.2.mlp.upper.weight")
    assert f"{VICTIM} as model.layers.2.mlp.upper.weight" in reasons(report)


# -- 3. files beside the weights ------------------------------------------------------------------------------


def _torch_bin(path: Path, tensors: dict[str, np.ndarray]) -> None:
    torch = pytest.importorskip("torch", reason="a real torch.save file")
    torch.save({k: torch.from_numpy(v.copy()) for k, v in tensors.items()}, path)


class _Evil:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, ...]:
        import os

        return (os.system, (self.command,))


def _other_bin(folder: Path, name: str) -> None:
    tensors = sample_tensors()
    _torch_bin(folder / name, {VICTIM: (tensors[VICTIM] * 2).astype(np.float16)})


def _other_safetensors(folder: Path, name: str) -> None:
    changed_copy(folder, name)


def _text(content: str) -> Callable[[Path, str], None]:
    def write(folder: Path, name: str) -> None:
        (folder / name).write_text(content)

    return write


def _evil_pickle(folder: Path, name: str) -> None:
    (folder / name).write_bytes(pickle.dumps(_Evil(f"touch {folder / 'canary'}"), protocol=2))


def _junk(folder: Path, name: str) -> None:
    (folder / name).write_bytes(b"\x00not weights at all\x01" * 8)


ADDED: list[tuple[str, Callable[[Path, str], None], str]] = [
    ("pytorch_model.bin", _other_bin, ""),
    ("model.safetensors", _other_safetensors, ""),
    ("adapter_model.safetensors", _other_safetensors, ""),
    ("modeling_llama.py", _text("import os\n"), ""),
    ("chat_template.jinja", _text("{{ messages }}"), ""),
    ("generation_config.json", _text('{"temperature": 0.1}'), ""),
    ("adapter_config.json", _text('{"r": 8}'), ""),
    ("merges.txt", _text("a b\n"), ""),
    ("extra.pkl", _evil_pickle, "posix.system"),
    ("training_args.bin", _evil_pickle, "posix.system"),
    ("model.gguf", _junk, "unreadable"),
    ("tf_model.h5", _junk, ""),
    ("flax_model.msgpack", _junk, ""),
    ("model.onnx", _junk, ""),
    ("sub/consolidated.00.pth", _junk, "unreadable"),
]


@pytest.mark.parametrize(("name", "write", "detail"), ADDED, ids=[a[0] for a in ADDED])
def test_added_file_makes_it_modified(
    run_cli: Run,
    copy_of_release: Path,
    release_manifest: Path,
    name: str,
    write: Callable[[Path, str], None],
    detail: str,
) -> None:
    (copy_of_release / name).parent.mkdir(parents=True, exist_ok=True)
    write(copy_of_release, name)
    code, report = verify(run_cli, copy_of_release, release_manifest)
    assert (code, report["verdict"]) == (1, "modified")
    assert statuses(report, "files")[name] == "extra"
    (added,) = [r for r in report["reasons"] if "file added" in r]
    assert name in added and detail in added
    assert not (copy_of_release / "canary").exists()

    # Set aside by the user, the same file changes nothing and is listed.
    code, report = verify(run_cli, copy_of_release, release_manifest, "--ignore", name)
    assert (code, report["verdict"]) == (0, "identical")
    assert name not in statuses(report, "files")
    assert report["ignored"] == {"files": [name]}
    assert f"1 file set aside by --ignore: {name}" in report["reasons"]


@pytest.mark.parametrize(
    "name",
    [
        "README.md",
        "LICENSE",
        "LICENSE.txt",
        "LICENSE-2.0",
        "NOTICE",
        "USE_POLICY.md",
        "figure.png",
        "logo.svg",
        "a.jpg",
    ],
)
def test_inert_added_file_is_listed_only(
    run_cli: Run, copy_of_release: Path, release_manifest: Path, name: str
) -> None:
    (copy_of_release / name).write_bytes(b"nothing a loader reads\n")
    code, report = verify(run_cli, copy_of_release, release_manifest)
    assert (code, report["verdict"]) == (0, "identical")
    assert statuses(report, "files")[name] == "extra"


@pytest.mark.parametrize(
    "name", ["additional_chat_templates/readme.jinja", "license.jinja", "README.json", "notice.yaml", "LICENSE.model"]
)
def test_an_inert_name_with_a_loaded_suffix_is_not_inert(
    run_cli: Run, copy_of_release: Path, release_manifest: Path, name: str
) -> None:
    """transformers loads every template in additional_chat_templates/, whatever its name: only plain text
    (no suffix, .txt, .rst) is inert by its name."""
    (copy_of_release / name).parent.mkdir(parents=True, exist_ok=True)
    (copy_of_release / name).write_text("{{ 'a template a tokenizer loads' }}\n")
    code, report = verify(run_cli, copy_of_release, release_manifest)
    assert (code, report["verdict"]) == (1, "modified")
    assert report["reasons"] == [f"1 file added: {name}"]


def test_exact_bin_conversion_beside_the_shards_is_harmless(
    run_cli: Run, copy_of_release: Path, release_manifest: Path
) -> None:
    torch = pytest.importorskip("torch", reason="a real torch.save file")
    _torch_bin(copy_of_release / "pytorch_model.bin", sample_tensors())
    loaded_bin = torch.load(copy_of_release / "pytorch_model.bin", weights_only=True)
    assert all(np.array_equal(loaded_bin[k].numpy(), v) for k, v in sample_tensors().items())
    code, report = verify(run_cli, copy_of_release, release_manifest)
    assert (code, report["verdict"]) == (0, "identical")
    assert statuses(report, "files")["pytorch_model.bin"] == "extra"


def test_genuine_bin_conversion_alone_is_equivalent(
    run_cli: Run, copy_of_release: Path, release_manifest: Path
) -> None:
    for path in copy_of_release.glob("model*"):
        path.unlink()
    _torch_bin(copy_of_release / "pytorch_model.bin", sample_tensors())
    code, report = verify(run_cli, copy_of_release, release_manifest)
    assert (code, report["verdict"]) == (0, "equivalent")


def test_malicious_pickle_is_named_not_a_stop(run_cli: Run, copy_of_release: Path, release_manifest: Path) -> None:
    _evil_pickle(copy_of_release, "pytorch_model.bin")
    code, report = verify(run_cli, copy_of_release, release_manifest)
    assert (code, report["verdict"]) == (1, "modified")
    (entry,) = [f for f in report["files"] if f["name"] == "pytorch_model.bin"]
    assert entry["status"] == "extra" and "posix.system" in entry["detail"]
    assert not (copy_of_release / "canary").exists()


def test_hub_local_dir_cache_is_never_part_of_a_checkpoint(run_cli: Run, copy_of_release: Path, tmp_path: Path) -> None:
    cache = copy_of_release / ".cache" / "huggingface" / "download"
    cache.mkdir(parents=True)
    (cache / "model-00001-of-00003.safetensors.metadata").write_text("abc\n1234\n")
    (copy_of_release / ".cache" / "huggingface" / ".gitignore").write_text("*\n")
    manifest = tmp_path / "m.json"
    assert run_cli("fingerprint", copy_of_release, "-o", manifest, "-q").code == 0
    named = {r["name"] for r in json.loads(manifest.read_text())["predicate"]["resources"]}
    assert not any(n.startswith(".cache/") for n in named) and "config.json" in named
    code, report = verify(run_cli, copy_of_release, manifest)
    assert (code, report["verdict"]) == (0, "identical")
    assert not any(f["name"].startswith(".cache/") for f in report["files"])


def test_ignore_through_the_library_and_diff(
    run_cli: Run, release_dir: Path, copy_of_release: Path, release_manifest: Path
) -> None:
    (copy_of_release / "extras").mkdir()
    (copy_of_release / "extras" / "modeling_x.py").write_text("import os\n")
    assert provenance.verify(copy_of_release, release_manifest).verdict is Verdict.MODIFIED
    report = provenance.verify(copy_of_release, release_manifest, options=provenance.ReadOptions(patterns=("extras",)))
    assert (report.verdict, report.facts["ignored"]) == (Verdict.IDENTICAL, {"files": ["extras/modeling_x.py"]})
    result = run_cli("diff", release_dir, copy_of_release, "--json", "-q")
    assert (result.code, json.loads(result.out)["verdict"]) == (1, "modified")
    result = run_cli("diff", release_dir, copy_of_release, "--json", "-q", "--ignore", "*.py")
    assert (result.code, json.loads(result.out)["verdict"]) == (0, "identical")


# -- 4. a shorter text file is rewritten, not cut short --------------------------------------------------------


def test_short_config_is_modified_and_short_shard_incomplete(
    run_cli: Run, copy_of_release: Path, release_manifest: Path
) -> None:
    config = copy_of_release / "config.json"
    config.write_text(config.read_text()[:-20] + "}\n")
    code, report = verify(run_cli, copy_of_release, release_manifest)
    assert (code, report["verdict"]) == (1, "modified")
    (entry,) = [f for f in report["files"] if f["name"] == "config.json"]
    assert entry["status"] == "modified" and "not cut short" in entry["detail"]
    assert not any(r.get("detail", "").startswith("the missing tail") for r in report["refetch"])


def test_cut_short_is_for_weights_files_only() -> None:
    """A reference recorded by size and digest (no tensor table): a shorter weights file is an unfinished
    download, a shorter config a rewritten one."""
    from manifests.records import FileFingerprint, Role
    from provenance._judging.compare import file_status_of
    from provenance.report import FileStatus

    weights = FileFingerprint("consolidated.00.pth", 1000, Role.WEIGHTS, digests={"md5": "a" * 32})
    config = FileFingerprint("params.json", 1000, Role.OTHER, digests={"md5": "b" * 32})
    short = {"size": 400, "digests": {"md5": "c" * 32}}
    assert file_status_of(weights, FileFingerprint("consolidated.00.pth", role=Role.WEIGHTS, **short)) == (
        FileStatus.CORRUPT,
        "short: 400 of 1,000 bytes",
    )
    assert file_status_of(config, FileFingerprint("params.json", role=Role.OTHER, **short)) == (
        FileStatus.MODIFIED,
        "400 bytes, expected 1,000 (rewritten, not cut short)",
    )


def test_identify_with_ignore(run_cli: Run, copy_of_release: Path, release_manifest: Path, tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    registry.mkdir()
    shutil.copyfile(release_manifest, registry / "sample.json")
    (copy_of_release / "modeling_x.py").write_text("import os\n")
    result = run_cli("identify", copy_of_release, "--registry", registry, "--json", "-q")
    best = json.loads(result.out)["matches"][0]
    assert (result.code, best["release"], best["verdict"]) == (1, "sample-release", "modified")
    result = run_cli("identify", copy_of_release, "--registry", registry, "--json", "-q", "--ignore", "*.py")
    best = json.loads(result.out)["matches"][0]
    assert (result.code, best["release"], best["verdict"]) == (0, "sample-release", "identical")


# -- 4. copies that are the release's bytes but not its tensors, entry points, file-level indexes ---------------


def test_copy_with_the_release_bytes_in_another_dtype_is_modified(
    run_cli: Run, copy_of_release: Path, release_manifest: Path
) -> None:
    """transformers loads every tensor of every indexed shard: a copy under the release's name with its
    bytes but another dtype (int16 for float16) is loaded, so it is no harmless leftover."""
    tensors = sample_tensors()
    other = next(k for k in tensors if k != VICTIM and "layers.2." in k)
    save_file(
        {VICTIM: tensors[VICTIM].view(np.int16), other: tensors[other]}, str(copy_of_release / "extra.safetensors")
    )
    point(copy_of_release, other, "extra.safetensors")  # an indexed shard, holding a bit-identical copy of `other`
    code, report = verify(run_cli, copy_of_release, release_manifest)
    assert (code, report["verdict"]) == (1, "modified")
    assert f"1 tensor added: {VICTIM}" in report["reasons"]
    assert f"extra.safetensors (holds {VICTIM}, not the release's)" in reasons(report)

    # Control: the same copy in the release's dtype is a leftover that changes nothing.
    save_file({VICTIM: tensors[VICTIM], other: tensors[other]}, str(copy_of_release / "extra.safetensors"))
    code, report = verify(run_cli, copy_of_release, release_manifest)
    assert (code, report["verdict"]) == (0, "equivalent")


@pytest.mark.parametrize(
    "name", ["pytorch_model.bin", "model.fp16.safetensors", "pytorch_model.fp16.bin", "model.safetensors"]
)
def test_added_entry_point_holding_part_of_the_release_is_modified(
    run_cli: Run, copy_of_release: Path, release_manifest: Path, name: str
) -> None:
    """A file from_pretrained opens by name (use_safetensors=False, a variant) loads only what it holds."""
    part = {VICTIM: sample_tensors()[VICTIM]}  # the release's own bits, and nothing else
    if name.endswith(".bin"):
        _torch_bin(copy_of_release / name, part)
    else:
        save_file(part, str(copy_of_release / name))
    code, report = verify(run_cli, copy_of_release, release_manifest)
    assert (code, report["verdict"]) == (1, "modified")
    assert any(r.startswith(f"{name} is what from_pretrained") and "does not hold" in r for r in report["reasons"])


def test_transformers_loads_an_added_partial_bin_with_use_safetensors_false(tiny_llama: Path, tmp_path: Path) -> None:
    import torch
    from transformers import LlamaForCausalLM

    reference = provenance.fingerprint(tiny_llama)
    original = release_tensors(tiny_llama)
    candidate = tmp_path / "partial-bin"
    shutil.copytree(tiny_llama, candidate)
    kept = "model.embed_tokens.weight"
    torch.save({kept: torch.from_numpy(original[kept].copy())}, candidate / "pytorch_model.bin")
    model = LlamaForCausalLM.from_pretrained(candidate, use_safetensors=False)
    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    differ = [k for k, v in original.items() if not np.array_equal(state[k], v)]
    assert differ and kept not in differ  # the rest is initialised afresh
    report = verify_checkpoint(candidate, reference)
    assert report.verdict is Verdict.MODIFIED
    assert any(r.startswith("pytorch_model.bin is what from_pretrained may load") for r in report.reasons)


@pytest.mark.parametrize("name", ["README.bin", "LICENSE.pkl", "notice.pt", "readme.pth"])
def test_inert_name_on_a_pickle_is_not_inert(
    run_cli: Run, copy_of_release: Path, release_manifest: Path, name: str
) -> None:
    """torch.load and pickle read a file by its bytes, not its name: README.bin is a pickle like any other."""
    if name.endswith(".pkl"):
        _evil_pickle(copy_of_release, name)
    else:
        torch = pytest.importorskip("torch", reason="a real torch.save file")
        torch.save({"x": _Evil(f"touch {copy_of_release / 'canary'}")}, copy_of_release / name)
    code, report = verify(run_cli, copy_of_release, release_manifest)
    assert (code, report["verdict"]) == (1, "modified")
    assert statuses(report, "files")[name] == "extra"
    (added,) = [r for r in report["reasons"] if "file added" in r]
    assert name in added and "posix.system" in added
    assert not (copy_of_release / "canary").exists()


def _file_level_manifest(run_cli: Run, release: Path, tmp_path: Path) -> Path:
    import hashlib

    listing = tmp_path / "SHA256SUMS"
    listing.write_text(
        "".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n" for p in sorted(release.iterdir()))
    )
    manifest = tmp_path / "imported.json"
    assert run_cli("import", listing, "-o", manifest).code == 0
    return manifest


def test_file_level_reference_and_a_changed_index_is_modified(
    run_cli: Run, copy_of_release: Path, tmp_path: Path
) -> None:
    """With whole-file digests only, a shard index that dropped a shard cannot be checked entry by entry:
    the release's index is a release file that changed."""
    manifest = _file_level_manifest(run_cli, copy_of_release, tmp_path)
    code, report = verify(run_cli, copy_of_release, manifest)
    assert (code, report["verdict"]) == (0, "identical")  # control
    document = json.loads((copy_of_release / INDEX).read_text())
    document["weight_map"] = {k: v for k, v in document["weight_map"].items() if v != SHARD2}
    (copy_of_release / INDEX).write_text(json.dumps(document, indent=2))
    code, report = verify(run_cli, copy_of_release, manifest)
    assert (code, report["verdict"]) == (1, "modified")
    assert f"{INDEX} differs (sha256 differs)" in report["reasons"]


def test_file_level_reference_and_an_added_index_is_undecided(
    run_cli: Run, copy_of_release: Path, tmp_path: Path
) -> None:
    manifest = _file_level_manifest(run_cli, copy_of_release, tmp_path)
    shutil.copy(copy_of_release / INDEX, copy_of_release / "pytorch_model.bin.index.json")
    code, report = verify(run_cli, copy_of_release, manifest)
    assert (code, report["verdict"]) == (1, "undecided")
    assert "a tensor-level manifest would decide" in report["reasons"][-1]
