"""Sketches and the classification they allow: dtype casts proven by digest (`converted`), fine-tunes with
figures (`modified`, the changed layers named), and what must not pass for a match."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from provenance._sample import sample_tensors, write_sharded
from tests.conftest import CliResult, write_release_manifest
from tests.conftest import verify_json as verify
from tests.support.writers import bf16_weights, variant

Run = Callable[..., CliResult]
SCHEMA = json.loads((Path(__file__).parents[2] / "manifests" / "schema.json").read_text())


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bfloat16 release fingerprinted with sketches."""
    folder = tmp_path_factory.mktemp("bf16") / "release"
    write_sharded(folder, bf16_weights(), 2)
    return write_release_manifest(folder, folder.parent / "release.json", sketches=True, name="bf16")


def test_sketches_follow_the_schema_and_stay_small(reference: Path) -> None:
    import jsonschema

    statement = json.loads(reference.read_text())
    jsonschema.validate(statement, SCHEMA)
    tensors = [t for f in statement["predicate"]["weights_provenance/v1"]["files"] for t in f.get("tensors", [])]
    sketched = [t for t in tensors if "sketch" in t]
    assert len(sketched) == len(tensors) == 39
    matrix = next(t for t in sketched if t["dtype"] == "BF16")
    assert set(matrix["sketch"]["casts"]) == {"F16"}  # no cast to its own dtype
    norm = next(t for t in sketched if t["dtype"] == "F32")
    assert set(norm["sketch"]["casts"]) == {"F16", "BF16"}
    assert all(len(t["sketch"]["sample"]) == 64 for t in sketched)
    per_tensor = len(json.dumps(matrix["sketch"], separators=(",", ":")))
    assert per_tensor < 2000, per_tensor


def test_bf16_to_f16_is_converted_and_proven(run_cli: Run, reference: Path, tmp_path: Path) -> None:
    folder = variant(tmp_path, "f16", lambda k, v: v.astype(np.float16) if v.dtype == ml_dtypes.bfloat16 else v)
    code, document = verify(run_cli, folder, reference)
    assert (code, document["verdict"]) == (1, "converted")
    casts = [t for t in document["tensors"] if t["status"] == "cast"]
    assert len(casts) == 30
    assert {t["detail"] for t in casts} == {"exact BF16 to F16 cast (proven by digest)"}
    assert {t["candidate_dtype"] for t in casts} == {"F16"}
    assert {t["status"] for t in document["tensors"]} == {"cast", "match"}
    assert document["reasons"][-1] == (
        "30 tensors are the release's values in another dtype (BF16 to F16); 9 bit-identical"
    )


def test_bf16_to_f32_is_converted_and_proven(run_cli: Run, reference: Path, tmp_path: Path) -> None:
    folder = variant(tmp_path, "f32", lambda k, v: v.astype(np.float32))
    code, document = verify(run_cli, folder, reference)
    assert (code, document["verdict"]) == (1, "converted")
    casts = {t["detail"] for t in document["tensors"] if t["status"] == "cast"}
    assert casts == {"the release's BF16 values in F32 (they round back exactly)"}


def test_a_cast_that_is_not_canonical_is_not_proven(run_cli: Run, reference: Path, tmp_path: Path) -> None:
    """Every value one F16 ulp off the canonical cast: within rounding, but no digest proves it."""

    def truncated(name: str, values: np.ndarray) -> np.ndarray:
        if values.dtype != ml_dtypes.bfloat16:
            return values
        half = values.astype(np.float16)
        bits = half.view(np.uint16)
        return np.where(half != 0, bits + np.uint16(1), bits).astype(np.uint16).view(np.float16)  # one ulp off

    folder = variant(tmp_path, "trunc", truncated)
    code, document = verify(run_cli, folder, reference)
    statuses = {t["status"] for t in document["tensors"]}
    assert "modified" not in statuses
    details = {t["detail"].split(" (")[0] for t in document["tensors"] if t["status"] == "cast"}
    assert "exact BF16 to F16 cast" not in details  # no digest proves it: it is not the canonical cast
    assert details <= {"the release's BF16 values in F16", "values within F16 rounding of the release's"}
    assert (code, document["verdict"]) == (1, "converted")


@pytest.mark.parametrize("noise", [0.001, 0.01, 0.05, 0.5])
def test_fine_tunes_are_modified_with_figures(run_cli: Run, reference: Path, tmp_path: Path, noise: float) -> None:
    rng = np.random.default_rng(11)

    def tuned(name: str, values: np.ndarray) -> np.ndarray:
        if ".layers.1." not in name or values.ndim != 2:
            return values
        wide = values.astype(np.float32)
        return (wide * (1 + noise * rng.standard_normal(wide.shape))).astype(values.dtype)

    folder = variant(tmp_path, f"tuned-{noise}", tuned)
    code, document = verify(run_cli, folder, reference)
    assert (code, document["verdict"]) == (1, "modified")
    changed = {t["name"]: t["detail"] for t in document["tensors"] if t["status"] == "modified"}
    assert set(changed) == {n for n in bf16_weights() if ".layers.1." in n and bf16_weights()[n].ndim == 2}
    assert {t["status"] for t in document["tensors"] if t["name"] not in changed} == {"match"}
    for detail in changed.values():
        if "none of the 64 sampled values changed" in detail:  # below BF16's rounding, few elements move
            assert noise < 0.005, detail
            continue
        figure = float(detail.split("relative change ")[1].split("%")[0]) / 100
        floor = noise / 3 if noise >= 0.01 else 0.0  # below BF16's resolution (0.4%), most elements round back
        assert floor < figure < noise * 3, detail


def test_unrelated_and_permuted_weights(run_cli: Run, reference: Path, tmp_path: Path) -> None:
    other = {
        k: v.astype(np.float32).astype(ml_dtypes.bfloat16) if v.ndim == 2 else v for k, v in sample_tensors(7).items()
    }
    unrelated = tmp_path / "unrelated"
    write_sharded(unrelated, other, 2)
    code, document = verify(run_cli, unrelated, reference)
    assert (code, document["verdict"]) == (1, "unrelated")

    permuted = variant(tmp_path, "permuted", lambda k, v: v[::-1].copy() if v.ndim == 2 else v)
    code, document = verify(run_cli, permuted, reference)
    assert document["verdict"] != "identical" and code == 1
    details = [t["detail"] for t in document["tensors"] if t["status"] == "modified"]
    assert details and all("correlation" in d for d in details)
    correlations = [float(d.split("correlation ")[1].split(" ")[0]) for d in details]
    assert max(abs(c) for c in correlations) < 0.5


def test_a_fine_tune_of_every_matrix_is_modified_not_unrelated(run_cli: Run, reference: Path, tmp_path: Path) -> None:
    """Continued pretraining changes every matrix; the samples still correlate with the release's."""
    rng = np.random.default_rng(2)

    def everywhere(name: str, values: np.ndarray) -> np.ndarray:
        if values.ndim != 2:
            return values
        wide = values.astype(np.float32)
        return (wide * (1 + 0.5 * rng.standard_normal(wide.shape))).astype(values.dtype)

    code, document = verify(run_cli, variant(tmp_path, "continued", everywhere), reference)
    assert (code, document["verdict"]) == (1, "modified")
    matrices = [t for t in document["tensors"] if len(t["shape"]) == 2]
    assert {t["status"] for t in matrices} == {"modified"}
    assert all(0.7 < t["correlation"] <= 1 and 0.2 < t["change"] < 1.0 for t in matrices), matrices[0]


def test_diff_draws_drift_per_layer_and_kind(run_cli: Run, tmp_path: Path) -> None:
    """Two checkpoints on disk: only the tensors that differ are sketched, and the change of layer 1
    shows in the terminal grid, the SVG and the PNG."""
    import xml.etree.ElementTree as ElementTree

    from PIL import Image

    base = tmp_path / "base"
    write_sharded(base, bf16_weights(), 2)
    rng = np.random.default_rng(3)
    tuned = tmp_path / "tuned"
    write_sharded(
        tuned,
        {
            k: (v.astype(np.float32) * (1 + 0.05 * rng.standard_normal(v.shape))).astype(v.dtype)
            if ".layers.1.self_attn." in k
            else v
            for k, v in bf16_weights().items()
        },
        2,
    )
    result = run_cli("diff", base, tuned, "--plot", tmp_path / "drift.svg", "-q")
    assert result.code == 1
    grid = result.out.split("verdict:")[0].splitlines()
    assert grid[0].split() == ["layer", *map(str, range(1, 10))]
    rows = {line.split()[0]: line.split()[1:] for line in grid[1:5]}
    assert rows["0"] == rows["2"] == rows["3"] == ["·"] * 9
    assert rows["1"] == ["·", "·", "·", "·", "·", "▓", "▓", "▓", "▓"]  # the four attention projections, ~5%
    assert "self_attn.q_proj.weight" in result.out and "wrote " in result.err

    svg = ElementTree.parse(tmp_path / "drift.svg").getroot()
    titles = [t.text or "" for t in svg.iter("{http://www.w3.org/2000/svg}title")]
    assert len(titles) == 36
    changed = [t for t in titles if not t.endswith(": 0.000%")]
    assert sorted(t.split(":")[0] for t in changed) == [
        f"layer 1, self_attn.{p}_proj.weight" for p in ("k", "o", "q", "v")
    ]

    assert run_cli("diff", base, tuned, "--plot", tmp_path / "drift.png", "-q").code == 1
    image = Image.open(tmp_path / "drift.png")
    image.load()
    assert image.size == (4 * 18, 9 * 18) and image.mode == "RGB"
    assert image.getpixel((0 * 18 + 5, 5 * 18 + 5)) == (235, 235, 235)  # layer 0, k_proj: unchanged
    assert image.getpixel((1 * 18 + 5, 5 * 18 + 5)) == (244, 109, 67)  # layer 1, k_proj: < 10%

    again = run_cli("diff", base, tuned, "--plot", tmp_path / "drift.png", "-q")
    assert again.code == 2 and "--force" in again.err
    bad = run_cli("diff", base, tuned, "--plot", tmp_path / "drift.gif", "-q")
    assert bad.code == 2 and ".svg or .png" in bad.err


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed: casts checked by digest")
def test_canonical_casts_agree_with_torch_for_every_16_bit_value() -> None:
    """A cast digest proves a conversion only if it is the cast converters make: torch's `.to()` rounds
    once, to nearest, ties to even. Every F16 and BF16 pattern (NaN payloads aside), and F32 values around
    both types' subnormal and overflow edges."""
    import torch

    from provenance._hashing.sketch import cast_to

    patterns = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    kinds = {"F16": (np.float16, torch.float16), "BF16": (ml_dtypes.bfloat16, torch.bfloat16)}
    for source, (ours, theirs) in kinds.items():
        values = patterns.view(ours)
        finite = ~np.isnan(values.astype(np.float32))
        for target, (_, wanted) in kinds.items():
            if target == source:
                continue
            expected = torch.from_numpy(patterns.view(np.int16).copy()).view(theirs).to(wanted)
            got = cast_to(values, target).view(np.uint16)
            assert np.array_equal(got[finite], expected.view(torch.int16).numpy().view(np.uint16)[finite]), source
    rng = np.random.default_rng(3)
    with np.errstate(over="ignore"):  # the largest scale overflows to Inf on purpose
        edges = np.concatenate(
            [
                rng.standard_normal(1 << 16).astype(np.float32) * np.float32(scale)
                for scale in (0.02, 1e-5, 1e-7, 1e-8, 1e-38, 1e-40, 6e4, 3e38)
            ]
        )
    for target, (_, wanted) in kinds.items():
        with np.errstate(all="ignore"):
            got = cast_to(edges, target).view(np.uint16)
        assert np.array_equal(got, torch.from_numpy(edges).to(wanted).view(torch.int16).numpy().view(np.uint16))


def test_values_that_are_not_numbers_are_never_a_cast(run_cli: Run, reference: Path, tmp_path: Path) -> None:
    """A float16 copy with one tensor set to Inf: within no rounding of the release, whatever the sample
    statistics that leave non-numbers out would say."""
    name = "model.layers.2.mlp.up_proj.weight"

    def broken(key: str, values: np.ndarray) -> np.ndarray:
        cast = values.astype(np.float16) if values.dtype == ml_dtypes.bfloat16 else values
        return np.full_like(cast, np.inf) if key == name else cast

    code, document = verify(run_cli, variant(tmp_path, "inf", broken), reference)
    assert (code, document["verdict"]) == (1, "modified")
    changed = {t["name"]: t["detail"] for t in document["tensors"] if t["status"] == "modified"}
    assert changed == {name: "64 of 64 sampled values are NaN or Inf where the release's are numbers"}


def _within_rounding(name: str, values: np.ndarray) -> np.ndarray:
    """Every bfloat16 matrix widened to float32 and moved by 0.45 of a bfloat16 step: it rounds back to the
    release's values, but it is not them (a fine-tune hidden inside bfloat16's rounding)."""
    if values.dtype != ml_dtypes.bfloat16:
        return values
    wide = values.astype(np.float32)
    step = np.where(wide == 0, 0, np.exp2(np.floor(np.log2(np.maximum(np.abs(wide), 1e-30))) - 7)).astype(np.float32)
    moved = (wide + np.float32(0.45) * step * np.sign(wide)).astype(np.float32)
    assert np.array_equal(moved.astype(ml_dtypes.bfloat16).view(np.uint16), values.view(np.uint16))
    return moved


def test_an_upcast_that_only_rounds_back_is_modified(run_cli: Run, reference: Path, tmp_path: Path) -> None:
    folder = variant(tmp_path, "hidden", _within_rounding)
    code, document = verify(run_cli, folder, reference)
    assert (code, document["verdict"]) == (1, "modified")
    moved = [t for t in document["tensors"] if t["status"] == "modified"]
    assert len(moved) == 30
    assert all("not its values widened" in t["detail"] for t in moved)


def test_a_genuine_upcast_reads_converted_exact(run_cli: Run, reference: Path, tmp_path: Path) -> None:
    folder = variant(tmp_path, "f32", lambda k, v: v.astype(np.float32))
    code, document = verify(run_cli, folder, reference)
    assert (code, document["verdict"], document["proof"]) == (1, "converted", "exact")


@pytest.fixture(scope="module")
def plain_reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same bfloat16 release, fingerprinted without sketches."""
    folder = tmp_path_factory.mktemp("bf16-plain") / "release"
    write_sharded(folder, bf16_weights(), 2)
    return write_release_manifest(folder, folder.parent / "release.json", sketches=False, name="bf16")


def test_upcast_against_a_manifest_without_sketches_is_cast_back(
    run_cli: Run, plain_reference: Path, tmp_path: Path
) -> None:
    """The candidate is read anyway: its float32 copy cast back to bfloat16 (every value surviving) is the
    release's digest, which proves the upcast without the release's sketch."""
    folder = variant(tmp_path, "f32", lambda k, v: v.astype(np.float32))
    code, document = verify(run_cli, folder, plain_reference)
    assert (code, document["verdict"], document["proof"]) == (1, "converted", "exact")

    folder = variant(tmp_path, "hidden", _within_rounding)
    code, document = verify(run_cli, folder, plain_reference)
    assert (code, document["verdict"]) == (1, "modified")


def test_a_lossy_cast_against_a_manifest_without_sketches_is_undecided(
    run_cli: Run, plain_reference: Path, tmp_path: Path
) -> None:
    folder = variant(tmp_path, "f16", lambda k, v: v.astype(np.float16) if v.dtype == ml_dtypes.bfloat16 else v)
    code, document = verify(run_cli, folder, plain_reference)
    assert (code, document["verdict"]) == (1, "undecided")
    assert "a sketched manifest (fingerprint without --no-sketches) would decide" in document["reasons"][-1]


def test_lossless_is_recorded_and_absent_means_unknown(tmp_path: Path) -> None:
    from manifests import open_reference
    from provenance._hashing.sketch import SketchBuilder

    exact = np.arange(-8, 8, dtype=np.float32) / 4  # every value a bfloat16 and a float16 value
    builder = SketchBuilder("t", "F32", exact.shape)
    builder.update(exact.tobytes())
    assert builder.finish().lossless == {"F16", "BF16"}
    builder = SketchBuilder("t", "F32", exact.shape)
    builder.update((exact + np.float32(1e-4)).tobytes())
    assert builder.finish().lossless == frozenset()
    # Bit for bit: the canonical NaN widens back to itself, a NaN with a payload or a -0.0 made +0.0 does not.
    for bits, kept in ((0x7FC00000, {"F16", "BF16"}), (0x7FC00001, set()), (0x7F800001, set())):
        values = np.concatenate([exact, np.array([bits], dtype=np.uint32).view(np.float32)])
        builder = SketchBuilder("t", "F32", values.shape)
        builder.update(values.tobytes())
        assert builder.finish().lossless == kept, hex(bits)

    folder = tmp_path / "release"
    write_sharded(folder, bf16_weights(), 2)
    manifest = write_release_manifest(folder, tmp_path / "m.json", sketches=True)
    statement = json.loads(manifest.read_text())
    for f in statement["predicate"]["weights_provenance/v1"]["files"]:
        for t in f.get("tensors", []):
            t["sketch"].pop("lossless", None)  # a manifest written before the field existed
    manifest.write_text(json.dumps(statement))
    sketches = [t.sketch for f in open_reference(manifest).manifest.checkpoint.files for t in f.tensors]
    assert sketches and all(s is not None and s.lossless is None for s in sketches)


# ------------------------------------------- on what transformers' save_pretrained writes, plain and sketched

needs_transformers = pytest.mark.skipif(
    importlib.util.find_spec("transformers") is None or importlib.util.find_spec("torch") is None,
    reason="transformers and torch write these checkpoints",
)


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny float16 LlamaForCausalLM saved by save_pretrained, with its copies: `.to(float32)`,
    `.to(bfloat16)`, another seed, a fine-tune by a few optimizer steps in float16 and in float32, and 1%
    noise on every tensor in float32;
    each copy's config.json is the release's (config comparison is not what is tested here). Also the plain
    and the sketched manifests of the release."""
    import shutil

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("saved")
    config = LlamaConfig(
        vocab_size=320,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)
    release = LlamaForCausalLM(config)
    with torch.no_grad():  # trained norms: not the ones of initialisation
        for parameter in release.parameters():
            if parameter.ndim == 1:
                parameter.add_(torch.randn_like(parameter) * 0.01)
    release.to(torch.float16)
    weights = {k: v.clone() for k, v in release.state_dict().items()}
    torch.manual_seed(1)
    other = {k: v.to(torch.float16) for k, v in LlamaForCausalLM(config).state_dict().items()}
    tuned = LlamaForCausalLM(config)  # a few optimizer steps from the release, in float32
    tuned.load_state_dict({k: v.float() for k, v in weights.items()})
    optimizer = torch.optim.SGD(tuned.parameters(), lr=0.05)
    tokens = torch.randint(0, 320, (2, 16), generator=torch.Generator().manual_seed(2))
    for _ in range(3):
        optimizer.zero_grad()
        tuned(input_ids=tokens, labels=tokens).loss.backward()
        optimizer.step()
    steps = {k: v.detach().clone() for k, v in tuned.state_dict().items()}
    noise = torch.Generator().manual_seed(3)
    noisy = {k: v.float() * (1 + 0.01 * torch.randn(v.shape, generator=noise)) for k, v in weights.items()}
    copies = {
        "rel": (weights, torch.float16),
        "f32": (weights, torch.float32),
        "bf16": (weights, torch.bfloat16),
        "other": (other, torch.float16),
        "tuned": (steps, torch.float16),
        "tuned-f32": (steps, torch.float32),
        "noise-f32": (noisy, torch.float32),
    }
    paths: dict[str, Path] = {}
    for name, (state, dtype) in copies.items():
        model = LlamaForCausalLM(config).to(dtype)
        model.load_state_dict({k: v.to(dtype) for k, v in state.items()})
        paths[name] = root / name
        model.save_pretrained(paths[name])
        for side in ("config.json", "generation_config.json"):
            if name != "rel":
                shutil.copyfile(paths["rel"] / side, paths[name] / side)
    paths["plain"] = write_release_manifest(paths["rel"], root / "plain.json", sketches=False, name="rel")
    paths["sketched"] = write_release_manifest(paths["rel"], root / "sketched.json", sketches=True, name="rel")
    return paths


SAVED = [  # (copy, verdict against a plain manifest, verdict against a sketched one)
    ("f32", "converted", "converted"),
    ("bf16", "undecided", "converted"),  # the release's bfloat16 cast digests prove it when sketched
    ("other", "undecided", "unrelated"),
    ("tuned", "modified", "modified"),  # some tensors' float16 values survive three steps: derived
    # the few steps moved two norms within float16's rounding only: they round back to the release's, which
    # proves the copy derives from it, and changed
    ("tuned-f32", "modified", "modified"),
    ("noise-f32", "undecided", "modified"),  # 1% on every tensor, in float32: nothing rounds back
]


@needs_transformers
@pytest.mark.parametrize(("copy", "plain", "sketched"), SAVED, ids=[c[0] for c in SAVED])
def test_what_save_pretrained_writes(
    run_cli: Run, saved: dict[str, Path], copy: str, plain: str, sketched: str
) -> None:
    for manifest, verdict in (("plain", plain), ("sketched", sketched)):
        code, document = verify(run_cli, saved[copy], saved[manifest])
        assert (code, document["verdict"]) == (1, verdict), (manifest, document["reasons"])
        if verdict == "undecided":
            assert document["reasons"][-1].endswith(
                "the manifest has no sketches: a sketched manifest (fingerprint without --no-sketches) would decide"
            )
        if verdict == "converted":
            assert document["proof"] == "exact"
