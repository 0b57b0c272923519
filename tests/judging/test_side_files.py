"""Settings and tokenizer files compared by meaning: configs key by key (what transformers' save_pretrained
rewrites), and the release's side files held against another layout's counterpart (a GGUF's key-values)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gguf
import pytest

from provenance._formats.side_files import meanings, parse_sentencepiece
from tests.conftest import REAL, REAL_TOKENIZER, CliResult, needs_shared, write_release_manifest
from tests.conftest import verify_json as verify
from tests.support.limits import bounded
from tests.support.llama import write_llama_gguf

Run = Callable[..., CliResult]
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama saved by transformers' save_pretrained in float16, in float32 and in bfloat16."""
    root = tmp_path_factory.mktemp("saved")
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=320,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
    )
    model = transformers.LlamaForCausalLM(config).to(torch.float16)
    model.save_pretrained(root / "release")
    model.to(torch.float32).save_pretrained(root / "f32")
    model.to(torch.bfloat16).save_pretrained(root / "bf16")
    write_release_manifest(root / "release", root / "release.json")
    return root


def config_entry(document: dict[str, Any]) -> dict[str, Any]:
    (entry,) = [f for f in document["files"] if f["name"] == "config.json"]
    return entry


def test_the_manifest_records_what_a_config_means(saved: Path) -> None:
    statement = json.loads((saved / "release.json").read_text())
    files = {f["name"]: f for f in statement["predicate"]["weights_provenance/v1"]["files"]}
    assert files["config.json"]["meaning"] == json.loads((saved / "release" / "config.json").read_text())
    assert files["generation_config.json"]["meaning"]["bos_token_id"] == 1
    assert "meaning" not in files["model.safetensors"]


def test_a_float32_save_is_converted_though_its_config_names_float32(run_cli: Run, saved: Path) -> None:
    code, document = verify(run_cli, saved / "f32", saved / "release.json")
    assert (code, document["verdict"]) == (1, "converted")
    entry = config_entry(document)
    assert entry["status"] == "match"
    assert entry["keys"] == [
        {
            "key": "dtype",
            "reference": "float16",
            "candidate": "float32",
            "ignored": "names the dtype the tensors were cast to (F32)",
        }
    ]


def test_a_bfloat16_save_is_undecided_not_modified_against_a_plain_manifest(run_cli: Run, saved: Path) -> None:
    code, document = verify(run_cli, saved / "bf16", saved / "release.json")
    assert (code, document["verdict"]) == (1, "undecided")
    assert config_entry(document)["status"] == "match"
    assert not any("config.json" in r for r in document["reasons"])


def copy(saved: Path, tmp_path: Path, name: str = "release") -> Path:
    return Path(shutil.copytree(saved / name, tmp_path / "copy"))


def edit_config(folder: Path, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(change(config), indent=2))


def test_a_changed_key_is_modified_and_listed_with_both_values(run_cli: Run, saved: Path, tmp_path: Path) -> None:
    folder = copy(saved, tmp_path)
    edit_config(folder, lambda c: {**c, "rms_norm_eps": 1e-5, "transformers_version": "5.0.0"})
    code, document = verify(run_cli, folder, saved / "release.json")
    assert (code, document["verdict"]) == (1, "modified")
    entry = config_entry(document)
    assert entry["status"] == "modified"
    assert entry["detail"] == "1 key differs: rms_norm_eps: 1e-06 -> 1e-05"
    assert entry["keys"] == [
        {"key": "rms_norm_eps", "reference": 1e-06, "candidate": 1e-05},
        {
            "key": "transformers_version",
            "reference": transformers.__version__,
            "candidate": "5.0.0",
            "ignored": "records the tool that wrote the file",
        },
    ]
    assert "config.json differs (1 key differs: rms_norm_eps: 1e-06 -> 1e-05)" in document["reasons"]


def test_architectures_is_not_tooling(run_cli: Run, saved: Path, tmp_path: Path) -> None:
    """`architectures` picks the class transformers builds: a change of it is a change of the model."""
    folder = copy(saved, tmp_path)
    edit_config(folder, lambda c: {**c, "architectures": ["LlamaForSequenceClassification"]})
    code, document = verify(run_cli, folder, saved / "release.json")
    assert (code, document["verdict"]) == (1, "modified")
    assert [k["key"] for k in config_entry(document)["keys"]] == ["architectures"]


def test_a_dtype_that_names_no_cast_is_a_change(run_cli: Run, saved: Path, tmp_path: Path) -> None:
    """The release's float16 tensors beside a config that says float32: transformers would load another dtype."""
    folder = copy(saved, tmp_path)
    edit_config(folder, lambda c: {**c, "dtype": "float32"})
    code, document = verify(run_cli, folder, saved / "release.json")
    assert (code, document["verdict"]) == (1, "modified")
    assert config_entry(document)["keys"] == [{"key": "dtype", "reference": "float16", "candidate": "float32"}]


def test_the_transformers_4_spelling_is_the_same_config(run_cli: Run, saved: Path, tmp_path: Path) -> None:
    """transformers 4.x writes `torch_dtype` and `rope_theta` where 5 writes `dtype` and `rope_parameters`."""
    folder = copy(saved, tmp_path)

    def legacy(config: dict[str, Any]) -> dict[str, Any]:
        config = dict(config)
        config["torch_dtype"] = config.pop("dtype")
        config["rope_theta"] = config.pop("rope_parameters")["rope_theta"]
        config["rope_scaling"] = None
        return {**config, "transformers_version": "4.46.3"}

    edit_config(folder, legacy)
    code, document = verify(run_cli, folder, saved / "release.json")
    assert (code, document["verdict"]) == (0, "equivalent")
    assert [(k["key"], k.get("ignored") is not None) for k in config_entry(document)["keys"]] == [
        ("transformers_version", True)
    ]


def test_an_older_manifest_without_meanings_compares_configs_by_digest(
    run_cli: Run, saved: Path, tmp_path: Path
) -> None:
    statement = json.loads((saved / "release.json").read_text())
    for entry in statement["predicate"]["weights_provenance/v1"]["files"]:
        entry.pop("meaning", None)
    older = tmp_path / "older.json"
    older.write_text(json.dumps(statement))
    code, document = verify(run_cli, saved / "f32", older)
    assert (code, document["verdict"]) == (1, "modified")
    assert config_entry(document)["status"] == "modified" and "keys" not in config_entry(document)


# -- hostile side files: no meaning (compared by digest), within the bound ---------------------------------


def test_hostile_side_files_get_no_meaning_within_the_bound(tmp_path: Path) -> None:
    folder = tmp_path / "hostile"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}")
    (folder / "config.json").write_text("[" * 200_000 + "]" * 200_000)  # nested past the stack
    (folder / "generation_config.json").write_text(json.dumps({"a": "x" * (2 << 20)}))  # over the cap
    (folder / "params.json").write_text('{"a": ' + "[" * 40 + "1" + "]" * 40 + "}")  # deeper than a config
    (folder / "tokenizer.model").write_bytes(b"\x0a\xff\xff\xff\xff\x0f" + b"\x00" * 100)  # a length past the end
    (folder / "tokenizer.json").write_bytes(b"\x0a\x05" * (30 << 20))  # 60 MiB of garbage
    assert meanings(folder, ["config.json", "generation_config.json", "params.json", "tokenizer.model"]) == {}
    run = bounded("fingerprint", folder, "-o", tmp_path / "m.json")
    assert run.code == 0, run.err
    statement = json.loads((tmp_path / "m.json").read_text())
    assert all("meaning" not in f for f in statement["predicate"]["weights_provenance/v1"]["files"])


def test_a_hostile_meaning_in_a_manifest_is_refused(saved: Path, tmp_path: Path) -> None:
    statement = json.loads((saved / "release.json").read_text())
    (entry,) = [f for f in statement["predicate"]["weights_provenance/v1"]["files"] if f["name"] == "config.json"]
    nested: Any = 1
    for _ in range(40):
        nested = [nested]
    entry["meaning"] = {"a": nested}
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(statement))
    run = bounded("verify", saved / "release", "--manifest", path)
    assert run.code == 2 and "config.json: meaning nests too deeply" in run.err, run.err


# -- a GGUF alone in its folder against the Hugging Face release -------------------------------------------

CHAT = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
TOKENIZER_CONFIG = {
    "add_bos_token": True,
    "add_eos_token": False,
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "chat_template": CHAT,
    "added_tokens_decoder": {
        "0": {"content": "<unk>", "special": True},
        "1": {"content": "<s>", "special": True},
        "2": {"content": "</s>", "special": True},
    },
}


def converted_vocabulary(size: int) -> tuple[list[bytes], list[float], list[int]]:
    """The real LLaMA tokenizer.model as convert_hf_to_gguf.py writes it beside TOKENIZER_CONFIG and a
    config of `size` tokens: its first `size` pieces, the added tokens control tokens scored -1000."""
    tokens, scores, types, _ = parse_sentencepiece(REAL_TOKENIZER.read_bytes())
    tokens, scores, types = tokens[:size], scores[:size], types[:size]
    for index in (0, 1, 2):
        scores[index], types[index] = -1000.0, gguf.TokenType.CONTROL
    return tokens, scores, types


@pytest.fixture(scope="module")
def hf_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample release with the side files a Hugging Face Llama 2 release has."""
    from provenance._sample import build_sample_release

    if not REAL_TOKENIZER.is_file():
        pytest.skip("../shared/fixtures/real is absent (a user's clone)")
    folder = build_sample_release(tmp_path_factory.mktemp("hf") / "release")
    (folder / "tokenizer.json").unlink()  # the sample's is a toy vocabulary: the real tokenizer.model stands
    shutil.copyfile(REAL_TOKENIZER, folder / "tokenizer.model")
    (folder / "tokenizer_config.json").write_text(json.dumps(TOKENIZER_CONFIG, indent=2))
    (folder / "generation_config.json").write_text(json.dumps({"bos_token_id": 1, "eos_token_id": 2}))
    (folder / "special_tokens_map.json").write_text(json.dumps({"bos_token": "<s>", "eos_token": "</s>"}))
    write_release_manifest(folder, folder.parent / "release.json")
    return folder


def lone_gguf(
    folder: Path,
    *,
    template: str | None = CHAT,
    token: bytes | None = None,
    raw: bool = False,
    model: str = "llama",
    flags: bool = True,
    extra: Callable[[gguf.GGUFWriter], None] | None = None,
) -> Path:
    """The release in one GGUF alone in its folder, with the tokenizer key-values llama.cpp's converter writes
    (`raw`: as it writes them with no tokenizer_config.json beside tokenizer.model, the pieces as they are);
    the tokenizer's model named `model`, the add_bos/add_eos flags left out unless `flags`, and `extra`
    key-values written after its own."""
    tokens, scores, types = converted_vocabulary(256)
    if raw:
        pieces, piece_scores, piece_types, _ = parse_sentencepiece(REAL_TOKENIZER.read_bytes())
        tokens, scores, types = list(pieces[:256]), list(piece_scores[:256]), list(piece_types[:256])
    if token is not None:
        tokens[100] = token

    def tokenizer(writer: gguf.GGUFWriter) -> None:
        writer.add_tokenizer_model(model)
        writer.add_token_list(tokens)
        writer.add_token_scores(scores)
        writer.add_token_types(types)
        writer.add_bos_token_id(1)
        writer.add_eos_token_id(2)
        writer.add_unk_token_id(0)
        if flags:
            writer.add_add_bos_token(True)
            writer.add_add_eos_token(False)
        if template is not None:
            writer.add_chat_template(template)
        if extra is not None:
            extra(writer)

    folder.mkdir()
    write_llama_gguf(folder / "model.gguf", None, rope_base=10000.0, key_values=tokenizer)
    return folder


@needs_shared
def test_a_lone_gguf_plays_the_releases_side_files(run_cli: Run, hf_release: Path, tmp_path: Path) -> None:
    code, document = verify(run_cli, lone_gguf(tmp_path / "gguf"), hf_release.parent / "release.json")
    assert (code, document["verdict"]) == (0, "equivalent")
    statuses = {f["name"]: f["status"] for f in document["files"]}
    for name in ("config.json", "tokenizer.model", "tokenizer_config.json", "generation_config.json"):
        assert statuses[name] == "match", document["files"]
    (layout,) = [r for r in document["reasons"] if r.startswith("read in llama.cpp's GGUF layout")]
    assert (
        "playing the release's files' roles: config.json by model.gguf's key-values, tokenizer.model by "
        "model.gguf's key-values, tokenizer_config.json by model.gguf's key-values, generation_config.json by "
        "nothing: a Hugging Face file llama.cpp does not read, special_tokens_map.json by nothing: a Hugging "
        "Face file llama.cpp does not read"
    ) in layout


@needs_shared
@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            {"template": "{{ messages }}"},
            "model.gguf: the chat template differs from the release's tokenizer_config.json",
        ),
        (
            {"token": b"hello"},
            "model.gguf: its tokenizer.ggml tokens differ from the release's tokenizer.model (llama.cpp tokenizes "
            "with the key-values)",
        ),
    ],
    ids=["chat-template", "token"],
)
def test_a_gguf_side_file_that_disagrees_is_named(
    run_cli: Run, hf_release: Path, tmp_path: Path, change: dict[str, Any], reason: str
) -> None:
    code, document = verify(run_cli, lone_gguf(tmp_path / "gguf", **change), hf_release.parent / "release.json")
    assert (code, document["verdict"]) == (1, "modified")
    assert reason in document["reasons"]


@needs_shared
@pytest.mark.parametrize(
    ("template", "code", "verdict"), [(CHAT, 1, "modified"), (None, 0, "equivalent")], ids=["added", "none"]
)
def test_a_chat_template_the_release_has_none_of_is_a_change(
    run_cli: Run, hf_release: Path, tmp_path: Path, template: str | None, code: int, verdict: str
) -> None:
    """A release without tokenizer_config.json (as Meta's): a GGUF that brings a chat template changes what
    llama.cpp's chat mode feeds the model, so it is named; one without is the release's."""
    release = shutil.copytree(hf_release, tmp_path / "release")
    (release / "tokenizer_config.json").unlink()
    write_release_manifest(release, tmp_path / "release.json")
    candidate = lone_gguf(tmp_path / "gguf", template=template, raw=True)
    result, document = verify(run_cli, candidate, tmp_path / "release.json")
    assert (result, document["verdict"]) == (code, verdict), document["reasons"]
    added = "model.gguf carries a chat template the release has none of (llama.cpp applies it)"
    assert (added in document["reasons"]) == (template is not None)


def test_the_real_llama_cpp_vocabulary_summarises_as_the_real_tokenizer_model(tmp_path: Path) -> None:
    """llama.cpp's own vocabulary GGUF of the LLaMA tokenizer, converted from the same tokenizer.model (before
    the converter read tokenizer_config.json): the same count, tokens, scores and types."""
    from provenance._formats.gguf_vocabulary import tokenizer_summary

    if not REAL_TOKENIZER.is_file():
        pytest.skip("../shared/fixtures/real is absent (a user's clone)")
    (tmp_path / "tokenizer.model").write_bytes(REAL_TOKENIZER.read_bytes())
    summary = meanings(tmp_path, ["tokenizer.model"])["tokenizer.model"]
    path = REAL / "ggml-vocab-llama-spm.gguf"
    with open(path, "rb") as stream:
        vocabulary = tokenizer_summary(stream, path.stat().st_size, path.name)["vocabulary"]
    assert vocabulary == {k: summary[k] for k in ("count", "tokens", "scores", "types")}
    reader = gguf.GGUFReader(str(path))  # the official reader: the count is its token list's
    assert summary["count"] == len(reader.fields["tokenizer.ggml.tokens"].data)


# -- Meta's layout against its Hugging Face conversion, both ways ------------------------------------------


def meta_release(folder: Path) -> Path:
    """The sample model as Meta ships it: consolidated shards, params.json and the real tokenizer.model."""
    from tests.support.llama import GOLDEN

    shutil.copytree(GOLDEN / "meta", folder)
    shutil.copyfile(REAL_TOKENIZER, folder / "tokenizer.model")
    return folder


@needs_shared
def test_meta_shards_play_the_hugging_face_side_files(run_cli: Run, hf_release: Path, tmp_path: Path) -> None:
    code, document = verify(run_cli, meta_release(tmp_path / "LLaMA"), hf_release.parent / "release.json")
    assert (code, document["verdict"]) == (0, "equivalent")
    statuses = {f["name"]: f["status"] for f in document["files"] if f["role"] == "other"}
    assert statuses == {
        "config.json": "match",
        "generation_config.json": "match",
        "special_tokens_map.json": "match",
        "tokenizer.model": "match",
        "tokenizer_config.json": "match",
    }
    (layout,) = [r for r in document["reasons"] if r.startswith("read in Meta's layout")]
    assert "tokenizer_config.json by tokenizer.model, the release's own" in layout
    assert "generation_config.json by nothing: a Hugging Face file Meta's layout has no counterpart of" in layout


@needs_shared
def test_a_hugging_face_conversion_is_equivalent_to_metas_release(
    run_cli: Run, hf_release: Path, tmp_path: Path
) -> None:
    """The Hugging Face files the conversion adds are Meta's in another form when they name the release's
    special tokens; a chat template Meta's release has no counterpart of is an added file."""
    release = meta_release(tmp_path / "meta-release")
    manifest = write_release_manifest(release, tmp_path / "meta.json")
    candidate = Path(shutil.copytree(hf_release, tmp_path / "hf"))
    untemplated = {k: v for k, v in TOKENIZER_CONFIG.items() if k != "chat_template"}
    (candidate / "tokenizer_config.json").write_text(json.dumps(untemplated))
    code, document = verify(run_cli, candidate, manifest)
    assert (code, document["verdict"]) == (0, "equivalent")
    assert {f["name"]: f["status"] for f in document["files"] if f["role"] == "other"} == {
        "params.json": "match",
        "tokenizer.model": "match",
    }
    (layout,) = [r for r in document["reasons"] if r.startswith("read in the Hugging Face layout")]
    assert "tokenizer_config.json's special tokens by the release's tokenizer.model" in layout
    code, document = verify(run_cli, hf_release, manifest)
    assert (code, document["verdict"]) == (1, "modified")
    assert document["reasons"][0] == "1 file added: tokenizer_config.json"


@needs_shared
def test_a_changed_params_json_in_the_meta_release_is_named(run_cli: Run, hf_release: Path, tmp_path: Path) -> None:
    """The Meta release's params.json, known from the manifest's meaning, describes another model than the
    Hugging Face candidate's config.json."""
    release = meta_release(tmp_path / "meta-release")
    params = json.loads((release / "params.json").read_text())
    (release / "params.json").write_text(json.dumps({**params, "norm_eps": 1e-6}))
    manifest = write_release_manifest(release, tmp_path / "meta.json")
    code, document = verify(run_cli, hf_release, manifest)
    assert (code, document["verdict"]) == (1, "modified")


def test_a_bpe_tokenizer_json_summarises_as_the_gguf_the_converter_writes(tmp_path: Path) -> None:
    """tokenizer.json written by the tokenizers library (through transformers' save_pretrained) and a GGUF
    holding what convert_hf_to_gguf.py's gpt2 path writes from it (tokens by id padded to the config's
    vocab_size, added special tokens as control tokens, the merges): the same summary."""
    from tokenizers import Tokenizer
    from tokenizers.models import BPE

    from provenance._formats.gguf_vocabulary import tokenizer_summary

    vocab = {"a": 0, "b": 1, "c": 2, "ab": 3, "abc": 4}
    backend = Tokenizer(BPE(vocab=vocab, merges=[("a", "b"), ("ab", "c")]))
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>")
    folder = tmp_path / "release"
    fast.save_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({"vocab_size": 10}))
    found = meanings(folder, [p.name for p in folder.iterdir()])
    summary = found["tokenizer.json"]

    ids = {**vocab, **{t.content: i for i, t in fast.added_tokens_decoder.items()}}
    by_id = {i: t for t, i in ids.items()}
    tokens = [by_id.get(i, f"[PAD{i}]") for i in range(10)]
    types = [
        gguf.TokenType.UNUSED
        if i not in by_id
        else gguf.TokenType.CONTROL
        if by_id[i] in ("<s>", "</s>")
        else gguf.TokenType.NORMAL
        for i in range(10)
    ]
    writer = gguf.GGUFWriter(str(tmp_path / "vocab.gguf"), "llama")
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(["a b", "ab c"])
    writer.add_bos_token_id(ids["<s>"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()
    path = tmp_path / "vocab.gguf"
    with open(path, "rb") as stream:
        written = tokenizer_summary(stream, path.stat().st_size, path.name)
    assert written["vocabulary"] == {k: summary[k] for k in ("count", "tokens", "types", "merges")}
    assert written["special"] == {"bos_token": "<s>"}
    assert found["tokenizer_config.json"]["bos_token"] == "<s>"


def test_a_gguf_rotary_scaling_is_held_against_the_config() -> None:
    from provenance._layouts.settings import gguf_against_config

    config = {"num_attention_heads": 4, "rope_scaling": {"rope_type": "linear", "factor": 2.0}}
    values: dict[str, Any] = {"general.architecture": "llama", "llama.attention.head_count": 4}
    assert gguf_against_config(values, config) == [
        "the GGUF's llama.rope.scaling.type = 'none' where the release's config.json gives rope_scaling type = "
        "'linear'",
        "the GGUF's llama.rope.scaling.factor = None where the release's config.json gives factor = 2.0",
    ]
    values |= {"llama.rope.scaling.type": "linear", "llama.rope.scaling.factor": 2.0}
    assert gguf_against_config(values, config) == []
    assert gguf_against_config(values, {**config, "hidden_act": "gelu"}) == [
        "the GGUF's (llama.cpp's SwiGLU) = 'silu' where the release's config.json gives hidden_act = 'gelu'"
    ]


def test_null_is_a_key_left_out_only_where_transformers_defaults_to_null() -> None:
    from provenance._judging.side_files import differing_keys

    assert differing_keys({"a": 1}, {"a": 1, "pad_token_id": None}, None) == []
    (change,) = differing_keys({"a": 1}, {"a": 1, "tie_word_embeddings": None}, None)
    assert (change.key, change.reference, change.candidate, change.ignored) == (
        "tie_word_embeddings",
        None,
        "null",
        None,
    )
    (change,) = differing_keys({"n": 1}, {"n": 1.0, "m": True}, None)  # 1 and 1.0 are one number; True is no 1
    assert change.key == "m"
    assert [k.key for k in differing_keys({"n": 1}, {"n": True}, None)] == ["n"]


@needs_shared
def test_meta_shards_against_a_release_with_tokenizer_json_only_are_undecided(
    run_cli: Run, hf_release: Path, tmp_path: Path
) -> None:
    """A conversion that wrote tokenizer.json and no tokenizer.model: Meta's tokenizer.model holds the same
    tokens, but its scores have no counterpart in the release, so nothing green can be said."""
    release = Path(shutil.copytree(hf_release, tmp_path / "release"))
    tokens, _, _, _ = parse_sentencepiece(REAL_TOKENIZER.read_bytes())
    vocab = {t.decode(): i for i, t in enumerate(tokens)}
    added = [{"id": i, "content": tokens[i].decode(), "special": True} for i in (0, 1, 2)]
    (release / "tokenizer.json").write_text(
        json.dumps({"model": {"type": "BPE", "vocab": vocab}, "added_tokens": added})
    )
    (release / "tokenizer.model").unlink()
    manifest = write_release_manifest(release, tmp_path / "release.json")
    code, document = verify(run_cli, meta_release(tmp_path / "LLaMA"), manifest)
    assert (code, document["verdict"]) == (1, "undecided")
    assert document["reasons"][0].startswith(
        "tokenizer.model holds the release's tokenizer.json tokens, but its scores (how it splits text) have no "
        "counterpart in the release"
    )
    assert {f["name"]: f["status"] for f in document["files"] if f["role"] == "other"} == {
        "config.json": "match",
        "generation_config.json": "match",
        "special_tokens_map.json": "match",
        "tokenizer.json": "match",
        "tokenizer_config.json": "match",
    }
    vocab["hello"] = vocab.pop("\u2581the")  # one token another: a change
    (release / "tokenizer.json").write_text(
        json.dumps({"model": {"type": "BPE", "vocab": vocab}, "added_tokens": added})
    )
    manifest = write_release_manifest(release, tmp_path / "changed.json")
    code, document = verify(run_cli, meta_release(tmp_path / "LLaMA2"), manifest)
    assert (code, document["verdict"]) == (1, "modified")
    assert "tokenizer.model's tokens differ from the release's tokenizer.json" in document["reasons"]


def test_a_rope_scaling_beside_rope_parameters_is_a_change(run_cli: Run, saved: Path, tmp_path: Path) -> None:
    """transformers 5 takes `rope_scaling` over `rope_parameters` when both are set: an added scaling
    changes the rotary embedding built, though `rope_parameters` still names the release's."""
    folder = copy(saved, tmp_path)
    edit_config(folder, lambda c: {**c, "rope_scaling": {"rope_type": "linear", "factor": 4.0}})
    code, document = verify(run_cli, folder, saved / "release.json")
    assert (code, document["verdict"]) == (1, "modified")
    assert "rope_scaling" in [k["key"] for k in config_entry(document)["keys"]]


@needs_shared
def test_a_gguf_that_tokenizes_by_another_model_is_modified(run_cli: Run, hf_release: Path, tmp_path: Path) -> None:
    """The release's sentencepiece pieces and scores under llama.cpp's unigram tokenizer ("ugm") split text
    otherwise: the tokenizer model the key-values name is part of what the vocabulary means."""
    folder = lone_gguf(tmp_path / "gguf", model="ugm")
    code, document = verify(run_cli, folder, hf_release.parent / "release.json")
    assert (code, document["verdict"]) == (1, "modified")
    assert (
        "model.gguf: its tokenizer.ggml model differ from the release's tokenizer.model (llama.cpp tokenizes "
        "with the key-values)"
    ) in document["reasons"]


@needs_shared
@pytest.mark.parametrize(
    "extra",
    [
        lambda w: w.add_add_space_prefix(False),
        lambda w: w.add_eot_token_id(2),
    ],
    ids=["add-space-prefix", "eot-token"],
)
def test_a_gguf_tokenizer_setting_no_release_file_records_is_undecided(
    run_cli: Run, hf_release: Path, tmp_path: Path, extra: Callable[[gguf.GGUFWriter], None]
) -> None:
    """llama.cpp reads more tokenizer settings than the release's files say (the leading space, the tokens
    that end a turn): one the converter does not write cannot be held against anything, so nothing green."""
    code, document = verify(run_cli, lone_gguf(tmp_path / "gguf", extra=extra), hf_release.parent / "release.json")
    assert (code, document["verdict"]) == (1, "undecided")


@needs_shared
def test_a_gguf_without_token_types_is_modified(run_cli: Run, hf_release: Path, tmp_path: Path) -> None:
    """Token types left out, llama.cpp reads every token as normal text (its control tokens too)."""
    tokens, scores, _ = converted_vocabulary(256)

    def tokenizer(writer: gguf.GGUFWriter) -> None:
        writer.add_tokenizer_model("llama")
        writer.add_token_list(tokens)
        writer.add_token_scores(scores)
        writer.add_bos_token_id(1)
        writer.add_eos_token_id(2)
        writer.add_unk_token_id(0)
        writer.add_add_bos_token(True)
        writer.add_add_eos_token(False)
        writer.add_chat_template(CHAT)

    folder = tmp_path / "gguf"
    folder.mkdir()
    write_llama_gguf(folder / "model.gguf", None, rope_base=10000.0, key_values=tokenizer)
    code, document = verify(run_cli, folder, hf_release.parent / "release.json")
    assert (code, document["verdict"]) == (1, "modified")


@needs_shared
def test_a_gguf_from_tokenizer_model_plays_a_tokenizer_json_beside_it(
    run_cli: Run, hf_release: Path, tmp_path: Path
) -> None:
    """A Llama 2 release holds tokenizer.json (a BPE with merges) beside tokenizer.model; the converter reads
    tokenizer.model and writes no merges: tokenizer.json's merges have no counterpart, not a change."""
    release = Path(shutil.copytree(hf_release, tmp_path / "release"))
    tokens, _, _ = converted_vocabulary(256)
    document = {
        "model": {"type": "BPE", "vocab": {t.decode(): i for i, t in enumerate(tokens)}, "merges": ["\u2581 t"]},
        "added_tokens": [{"id": i, "content": tokens[i].decode(), "special": True} for i in (0, 1, 2)],
    }
    (release / "tokenizer.json").write_text(json.dumps(document))
    write_release_manifest(release, tmp_path / "release.json")
    code, result = verify(run_cli, lone_gguf(tmp_path / "gguf"), tmp_path / "release.json")
    assert (code, result["verdict"]) == (0, "equivalent")
    assert {f["name"]: f["status"] for f in result["files"]}["tokenizer.json"] == "match"


@needs_shared
def test_meanings_of_the_wrong_shape_in_a_manifest_are_no_crash(hf_release: Path, tmp_path: Path) -> None:
    """A manifest's meanings are whatever its author wrote: values of the wrong type are no traceback."""
    statement = json.loads((hf_release.parent / "release.json").read_text())
    hostile = {
        "config.json": {"num_attention_heads": "x", "hidden_size": [1], "rope_theta": {}, "rope_scaling": [1]},
        "tokenizer.model": {"tokens": [1], "count": {}, "scheme": [], "special_tokens": [1], "special": [2]},
        "tokenizer_config.json": {"added_tokens": [1], "chat_template": 3, "add_bos_token": "yes"},
    }
    for entry in statement["predicate"]["weights_provenance/v1"]["files"]:
        entry["meaning"] = hostile.get(entry["name"], entry.get("meaning"))
        if entry["meaning"] is None:
            entry.pop("meaning")
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(statement))
    run = bounded("verify", lone_gguf(tmp_path / "gguf"), "--manifest", path)
    assert run.code in (1, 2) and "Traceback" not in run.err, run.err


@needs_shared
@pytest.mark.parametrize(
    "generation",
    [{"bos_token_id": 1, "eos_token_id": 13}, {"bos_token_id": 1, "eos_token_id": 2, "bad_words_ids": [[100]]}],
    ids=["other-eos", "bad-words"],
)
def test_a_generation_config_the_conversion_does_not_write_is_added_to_metas_release(
    run_cli: Run, hf_release: Path, tmp_path: Path, generation: dict[str, Any]
) -> None:
    """transformers' generate stops at generation_config.json's eos ids and bans its bad words: one whose ids
    are not the release's tokenizer.model's, or that sets more than the converter writes, is an added file."""
    release = meta_release(tmp_path / "meta-release")
    manifest = write_release_manifest(release, tmp_path / "meta.json")
    candidate = Path(shutil.copytree(hf_release, tmp_path / "hf"))
    untemplated = {k: v for k, v in TOKENIZER_CONFIG.items() if k != "chat_template"}
    (candidate / "tokenizer_config.json").write_text(json.dumps(untemplated))
    (candidate / "generation_config.json").write_text(json.dumps(generation))
    code, document = verify(run_cli, candidate, manifest)
    assert (code, document["verdict"]) == (1, "modified")
    assert document["reasons"][0] == "1 file added: generation_config.json"


@needs_shared
@pytest.mark.parametrize("key", ["\u00b2", "9" * 5000], ids=["superscript-digit", "five-thousand-digits"])
def test_an_added_token_id_python_cannot_read_as_a_number_is_left_out(tmp_path: Path, key: str) -> None:
    """str.isdigit is true of "²" and of 5000 digits, and int() refuses both: such an id is no token id."""
    folder = tmp_path / "hostile"
    folder.mkdir()
    shutil.copyfile(REAL_TOKENIZER, folder / "tokenizer.model")
    (folder / "tokenizer_config.json").write_text(json.dumps({"added_tokens_decoder": {key: {"content": "x"}}}))
    found = meanings(folder, ["tokenizer.model", "tokenizer_config.json"])
    assert found["tokenizer_config.json"]["added_tokens"] == {}
    assert found["tokenizer.model"]["count"] == 32000


def test_a_gguf_token_type_array_past_any_vocabulary_is_refused(tmp_path: Path) -> None:
    """Token types are read whole: an array of them larger than any vocabulary is refused before it is
    read, not turned into millions of Python numbers."""
    from provenance._formats.gguf_vocabulary import tokenizer_summary
    from provenance.errors import MalformedContainer

    path = tmp_path / "types.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_token_types([1] * (5 << 20))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()
    with open(path, "rb") as stream, pytest.raises(MalformedContainer, match="over the cap"):
        tokenizer_summary(stream, path.stat().st_size, "types.gguf")


@needs_shared
@pytest.mark.parametrize("add_eos", [False, True], ids=["default", "release-adds-eos"])
def test_a_gguf_without_bos_eos_flags_is_held_as_llama_cpp_defaults_them(
    run_cli: Run, hf_release: Path, tmp_path: Path, add_eos: bool
) -> None:
    """Flags left out, llama.cpp adds BOS and not EOS to a sentencepiece vocabulary's text: the release's
    tokenizer_config.json saying otherwise is a change."""
    release = Path(shutil.copytree(hf_release, tmp_path / "release"))
    (release / "tokenizer_config.json").write_text(json.dumps({**TOKENIZER_CONFIG, "add_eos_token": add_eos}))
    write_release_manifest(release, tmp_path / "release.json")
    folder = lone_gguf(tmp_path / "gguf", flags=False)
    code, document = verify(run_cli, folder, tmp_path / "release.json")
    assert (code, document["verdict"]) == ((1, "modified") if add_eos else (0, "equivalent"))


@needs_shared
def test_a_named_chat_template_is_no_form_of_metas_release(run_cli: Run, hf_release: Path, tmp_path: Path) -> None:
    """A list of named templates without "default": transformers applies "tool_use" when given tools, a
    template Meta's release has no counterpart of, so tokenizer_config.json is a file added."""
    release = meta_release(tmp_path / "meta-release")
    manifest = write_release_manifest(release, tmp_path / "meta.json")
    candidate = Path(shutil.copytree(hf_release, tmp_path / "hf"))
    named = {k: v for k, v in TOKENIZER_CONFIG.items() if k != "chat_template"}
    named["chat_template"] = [{"name": "tool_use", "template": CHAT}]
    (candidate / "tokenizer_config.json").write_text(json.dumps(named))
    code, document = verify(run_cli, candidate, manifest)
    assert (code, document["verdict"]) == (1, "modified")
    assert document["reasons"][0] == "1 file added: tokenizer_config.json"
