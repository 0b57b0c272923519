"""Verdicts on what the real conversion tools write: transformers' `save_pretrained`, llama.cpp's
`convert_hf_to_gguf.py` and transformers' `convert_llama_weights_to_hf.py`, run at test time on a tiny Llama
(tests/support/realtools.py builds each output once per session).

Each case is verified against a sketched and against a plain manifest of its reference, and the verdict, its
proof and the exit code must be exactly what the design promises: a green verdict only where the evidence
proves it, `undecided` (never `unrelated` or `modified` by default) where the manifest at hand cannot tell.

The converters come from tests/support/fetch_tools.py (.ci/run fetches them). Without them, or without torch
and transformers, these tests skip with the reason; in CI (CI=true, or PROVENANCE_REQUIRE_TOOLS=1) they fail.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CliResult
from tests.support.fetch_tools import required, tools_folder

try:
    from tests.support import realtools
except ImportError as error:
    if required():
        raise
    pytest.skip(f"{error.name} is not installed: the real tools need torch and transformers", allow_module_level=True)

GREEN = ("identical", "equivalent")


@pytest.fixture(scope="module")
def workshop(tmp_path_factory: pytest.TempPathFactory) -> realtools.Workshop:
    """The real outputs of this session (each built when a test first asks for it)."""
    reason = realtools.missing()
    if reason is not None:
        if required():
            pytest.fail(f"the real tools are required here: {reason}")
        pytest.skip(reason)
    return realtools.Workshop(tmp_path_factory.mktemp("realtools"))


# (candidate, reference, manifest kind) -> (verdict, proof, exit code). The release is float16.
EXPECTED: dict[tuple[str, str, str], tuple[str, str | None]] = {
    # save_pretrained of the loaded release: the same bytes.
    ("resaved", "release", "sketched"): ("identical", "exact"),
    ("resaved", "release", "plain"): ("identical", "exact"),
    # Re-serialized (.bin) and re-sharded: the same numbers in other containers.
    ("bin", "release", "sketched"): ("equivalent", "exact"),
    ("bin", "release", "plain"): ("equivalent", "exact"),
    ("shards", "release", "sketched"): ("equivalent", "exact"),
    ("shards", "release", "plain"): ("equivalent", "exact"),
    # An upcast is proven by casting the candidate back; config.json's dtype agrees with the proven cast.
    ("float32", "release", "sketched"): ("converted", "exact"),
    ("float32", "release", "plain"): ("converted", "exact"),
    # A narrowing cast: transformers rounds F16 -> F32 -> BF16 to nearest even, the canonical cast whose digest
    # a sketched manifest holds (exact); without sketches nothing can tell it from a change.
    ("bfloat16", "release", "sketched"): ("converted", "exact"),
    ("bfloat16", "release", "plain"): ("undecided", None),
    # Noise on every matrix, the trained norm vectors shared bit for bit: derived and changed, either way.
    ("noise", "release", "sketched"): ("modified", None),
    ("noise", "release", "plain"): ("modified", None),
    # A few optimizer steps move every tensor (saved in float32): only sketches can tell a fine-tune.
    ("optimizer", "release", "sketched"): ("modified", None),
    ("optimizer", "release", "plain"): ("undecided", None),
    # Another seed: sketches say unrelated; a plain manifest cannot tell other weights from a change.
    ("unrelated", "release", "sketched"): ("unrelated", None),
    ("unrelated", "release", "plain"): ("undecided", None),
    # A GGUF alone in its folder carries config and tokenizer in its key-values. llama.cpp's converter
    # keeps norm vectors in float32 whatever --outtype says: the f16 file's matrices are the release's
    # bits, its norms a cast that casting back proves, so `converted` (exact), not `equivalent`.
    ("gguf-f16", "release", "sketched"): ("converted", "exact"),
    ("gguf-f16", "release", "plain"): ("converted", "exact"),
    ("gguf-f32", "release", "sketched"): ("converted", "exact"),
    ("gguf-f32", "release", "plain"): ("converted", "exact"),
    ("gguf-bf16", "release", "sketched"): ("converted", "exact"),  # gguf-py rounds to nearest even too
    ("gguf-bf16", "release", "plain"): ("undecided", None),
    ("gguf-q8_0", "release", "sketched"): ("converted", "sampled"),  # the grid check; with Q8_0 digests, exact
    ("gguf-q8_0", "release", "plain"): ("undecided", None),
    ("gguf-q8_0", "release", "quant-digests"): ("converted", "exact"),
    # Meta's shards and their transformers conversion hold the same bfloat16 numbers: both ways.
    ("meta-1", "meta-1-hf", "sketched"): ("equivalent", "exact"),
    ("meta-1", "meta-1-hf", "plain"): ("equivalent", "exact"),
    ("meta-1-hf", "meta-1", "sketched"): ("undecided", None),  # tokenizer.json's merges: see DECIDES
    ("meta-1-hf", "meta-1", "plain"): ("undecided", None),  # tokenizer.json's merges: see DECIDES
    ("meta-2", "meta-2-hf", "sketched"): ("equivalent", "exact"),
    ("meta-2", "meta-2-hf", "plain"): ("equivalent", "exact"),
    ("meta-2-hf", "meta-2", "sketched"): ("undecided", None),  # tokenizer.json's merges: see DECIDES
    ("meta-2-hf", "meta-2", "plain"): ("undecided", None),  # tokenizer.json's merges: see DECIDES
}


# The Hugging Face conversion of Meta's release carries a tokenizer.json, which transformers prefers to
# tokenizer.model: its tokens are checked against the release's, but its merges (how it splits text) are not
# recorded by Meta's release, so nothing at hand decides them.
DECIDES = {"meta-1-hf": "merges", "meta-2-hf": "merges"}


@pytest.mark.parametrize(("candidate", "reference", "kind"), list(EXPECTED), ids=["-".join(k) for k in EXPECTED])
def test_verdict_on_real_output(
    workshop: realtools.Workshop,
    run_cli: Callable[..., CliResult],
    candidate: str,
    reference: str,
    kind: str,
) -> None:
    verdict, proof = EXPECTED[candidate, reference, kind]
    manifest = workshop.manifest(reference, kind)
    result = run_cli("verify", workshop.folder(candidate), "--manifest", manifest, "--json", "-q")
    document: dict[str, Any] = json.loads(result.out) if result.out.strip() else {}
    seen = (document.get("verdict"), document.get("proof"), result.code)
    assert seen == (verdict, proof, 0 if verdict in GREEN else 1), (document.get("reasons"), result.err)
    if verdict == "undecided":  # the reason names the evidence that would decide
        word = DECIDES.get(candidate, "sketch")
        assert any(word in reason for reason in document["reasons"]), document["reasons"]


def test_outputs_are_the_real_tools(workshop: realtools.Workshop) -> None:
    """The cases are what the tools wrote: the formats and dtypes each case is about, so a builder that
    silently fell back (a converter that wrote f16 when asked for q8_0) cannot make a case pass."""
    import gguf

    assert (workshop.folder("bin") / "pytorch_model.bin").is_file()
    assert not list(workshop.folder("bin").glob("*.safetensors"))
    assert (workshop.folder("shards") / "model.safetensors.index.json").is_file()
    assert len(list(workshop.folder("shards").glob("model-*.safetensors"))) > 1
    for outtype, kind in (("f16", "F16"), ("bf16", "BF16"), ("f32", "F32"), ("q8_0", "Q8_0")):
        reader = gguf.GGUFReader(workshop.folder(f"gguf-{outtype}") / f"model-{outtype}.gguf")
        types = {t.tensor_type.name for t in reader.tensors if len(t.shape) == 2}
        assert types == {kind}, (outtype, types)
    for shards in (1, 2):
        assert len(list(workshop.folder(f"meta-{shards}").glob("consolidated.*.pth"))) == shards
        assert list(workshop.folder(f"meta-{shards}-hf").glob("*.safetensors"))


def test_missing_tools_fail_in_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Locally a missing tool is a skip with its reason; in CI (CI=true) the same absence is an error."""
    monkeypatch.setenv("PROVENANCE_TOOLS", str(tmp_path))
    assert tools_folder() == tmp_path
    monkeypatch.delenv("PROVENANCE_REQUIRE_TOOLS", raising=False)
    monkeypatch.setenv("CI", "true")
    assert required()
    monkeypatch.setenv("CI", "")
    assert not required()
    monkeypatch.setenv("PROVENANCE_REQUIRE_TOOLS", "1")
    assert required()
