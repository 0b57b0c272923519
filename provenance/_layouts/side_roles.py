"""The release's settings and tokenizer files, when the candidate holds their content in another form.

A GGUF carries its config and tokenizer in its key-values; Meta's layout has params.json for config.json
and tokenizer.model for every Hugging Face tokenizer file. When the counterpart agrees with the release's
file by meaning (the manifest records what each file means), the release's file is not missing: it is put
in the candidate as it was released (a stand-in), and the report's layout line says what plays its role.
Where they disagree, the change is named; where nothing can tell (an older manifest, or a counterpart that
holds more than the release's file says), the file stays missing or the doubt is said.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Any

from manifests.records import Checkpoint, FileFingerprint, Role

# Hugging Face files no other layout has: transformers' generation defaults, and lists of the special and
# added tokens that the vocabulary (compared) and tokenizer_config.json (compared) already hold.
HF_ONLY = ("generation_config.json", "special_tokens_map.json", "added_tokens.json")
TOKENIZER_MODEL, TOKENIZER_JSON = "tokenizer.model", "tokenizer.json"
TOKENIZER_CONFIG, CHAT_TEMPLATE = "tokenizer_config.json", "chat_template.jinja"
VOCABULARY_KEYS = ("count", "tokens", "scores", "types", "merges")


@dataclass
class Roles:
    """What the comparison of counterparts found: stand-ins for the release's files, and sentences."""

    stand_ins: list[FileFingerprint] = field(default_factory=list)
    played: list[str] = field(default_factory=list)  # "config.json by model.gguf's key-values"
    changes: list[str] = field(default_factory=list)
    doubts: list[str] = field(default_factory=list)
    dropped: set[str] = field(default_factory=set)  # the candidate's files that are the release's in another form

    def stand_in(self, released: FileFingerprint, by: str) -> None:
        self.stand_ins.append(released)
        self.played.append(f"{released.path} by {by}")

    def note(self) -> str:
        return f"playing the release's files' roles: {', '.join(self.played)}" if self.played else ""


def released(reference: Checkpoint, candidate: Checkpoint) -> dict[str, FileFingerprint]:
    """The release's settings files (top folder) that the candidate does not have, by name."""
    present = {f.path for f in candidate.files}
    return {
        f.path: f
        for f in reference.files
        if f.role is Role.OTHER and "/" not in f.path and f.path not in present and posixpath.basename(f.path)
    }


# The tokenizer.ggml.model llama.cpp tokenizes a release file's scheme with, as the converter names it
GGUF_MODELS = {"sentencepiece": "llama", "bpe": "gpt2"}


def _vocabulary_differs(
    ours: dict[str, Any], theirs: dict[str, Any], keys: tuple[str, ...], model: Any, expected: str | None
) -> list[str]:
    """What of the release file's vocabulary the GGUF's differs in, or leaves out (llama.cpp then reads
    defaults: every token normal text, no scores), and its tokenizer model when it is not the one expected."""
    wrong_model = ["model"] if expected is not None and model != expected else []
    return wrong_model + [k for k in keys if k in ours and theirs.get(k) != ours[k]]


def gguf_roles(
    gguf: str, summary: dict[str, Any], config_agrees: bool | None, reference: Checkpoint, candidate: Checkpoint
) -> Roles:
    """A GGUF's key-values held against the release's config and tokenizer files it plays the role of.
    `config_agrees` is None when the release's config.json cannot be read (recorded by digest only)."""
    roles = Roles()
    missing = released(reference, candidate)
    kv = f"{gguf}'s key-values"
    config = missing.get("config.json")
    if config is not None and config_agrees:
        roles.stand_in(config, kv)
    vocabulary = summary.get("vocabulary") or {}
    sentencepiece = summary.get("model") == "llama"
    checked: set[str] = set()  # what of the GGUF's vocabulary a release file vouches for
    pairs: tuple[tuple[str, tuple[str, ...]], ...] = (
        (TOKENIZER_MODEL, VOCABULARY_KEYS),
        (TOKENIZER_JSON, ("count", "tokens", "merges")),
    )
    for name, keys in pairs:
        file = missing.get(name)
        if file is None or file.meaning is None or "tokens" not in file.meaning:
            continue
        expected = GGUF_MODELS.get(str(file.meaning.get("scheme")))
        if name == TOKENIZER_JSON and not sentencepiece:
            keys = (*keys, "types")  # the converter's types come from tokenizer.json's added tokens
        elif name == TOKENIZER_JSON:  # converted from tokenizer.model: tokenizer.json's merges have no counterpart
            keys, expected = ("count", "tokens"), None
        differ = _vocabulary_differs(file.meaning, vocabulary, keys, summary.get("model"), expected) or (
            ["tokens"] if "tokens" not in vocabulary else []
        )
        if differ:
            roles.changes.append(
                f"{gguf}: its tokenizer.ggml {', '.join(differ)} differ from the release's {name} (llama.cpp "
                f"tokenizes with the key-values)"
            )
            continue
        checked.update(k for k in keys if k in file.meaning)
        roles.stand_in(file, kv)
    unchecked = [k for k in ("scores", "types", "merges") if k in vocabulary and k not in checked]
    if checked and unchecked:  # the tokens agree, but llama.cpp also tokenizes by what no release file says
        roles.doubts.append(
            f"{gguf}'s tokenizer.ggml {', '.join(unchecked)} have no counterpart in the release's tokenizer files: "
            f"a change of them cannot be ruled out; the release's {TOKENIZER_MODEL} or {TOKENIZER_JSON} "
            f"recording them would decide"
        )
    if checked and summary.get("unsummarised"):
        roles.doubts.append(
            f"{gguf} sets tokenizer key-values llama.cpp reads that no release file says "
            f"({', '.join(summary['unsummarised'])}): a change of the tokenization cannot be ruled out"
        )
    _templates(gguf, summary, missing, roles, kv)
    for name in HF_ONLY:
        if name in missing:
            roles.stand_in(missing[name], "nothing: a Hugging Face file llama.cpp does not read")
    return roles


def _templates(gguf: str, summary: dict[str, Any], missing: dict[str, FileFingerprint], roles: Roles, kv: str) -> None:
    """tokenizer_config.json's special tokens and BOS/EOS flags, and the chat template (chat_template.jinja's
    when the release has one, as transformers prefers it, else tokenizer_config.json's), held against the
    GGUF's: a template the GGUF adds where the release has none is a change (llama.cpp applies it)."""
    files = {n: f for n in (TOKENIZER_CONFIG, CHAT_TEMPLATE) if (f := missing.get(n)) is not None and f.meaning}
    source = files.get(CHAT_TEMPLATE) or files.get(TOKENIZER_CONFIG)
    if source is None and summary.get("chat_template") is not None:
        if any(n in missing for n in (TOKENIZER_CONFIG, CHAT_TEMPLATE)):  # recorded by digest only: unknown
            roles.doubts.append(f"{gguf} carries a chat template the release's files do not say (recorded by digest)")
        else:  # a release without one (Meta's): llama.cpp's chat mode then applies a template no release has
            roles.changes.append(f"{gguf} carries a chat template the release has none of (llama.cpp applies it)")
    expected = source.meaning.get("chat_template") if source is not None and source.meaning else None
    same_template = expected == summary.get("chat_template")
    for name, file in files.items():
        meaning = file.meaning or {}
        differ = [] if same_template or file is not source else ["the chat template"]
        if name == TOKENIZER_CONFIG:
            differ += [k for k, v in (summary.get("special") or {}).items() if k in meaning and meaning[k] != v]
            differ += [k for k, v in _flags(summary).items() if meaning.get(k) is not None and meaning[k] != v]
        if differ:
            verb = "differs" if len(differ) == 1 else "differ"
            roles.changes.append(f"{gguf}: {', '.join(differ)} {verb} from the release's {name}")
        else:
            roles.stand_in(file, kv)


# What llama.cpp adds to a sentencepiece vocabulary's text when the GGUF leaves the flags out
SENTENCEPIECE_FLAGS = {"add_bos_token": True, "add_eos_token": False}


def _flags(summary: dict[str, Any]) -> dict[str, Any]:
    """The GGUF's BOS/EOS flags as llama.cpp applies them: its own, else its default for the vocabulary
    (known for sentencepiece; for another, a flag left out is none, so differs from the release's)."""
    defaults = SENTENCEPIECE_FLAGS if summary.get("model") == "llama" else {}
    return {k: summary.get(k) if summary.get(k) is not None else defaults.get(k) for k in SENTENCEPIECE_FLAGS}


HF_TOKENIZER = (TOKENIZER_JSON, TOKENIZER_CONFIG, CHAT_TEMPLATE)


def _same_file(a: FileFingerprint, b: FileFingerprint) -> bool:
    common = [k for k in a.digests if k in b.digests]
    return bool(common) and all(a.digests[k] == b.digests[k] for k in common) and a.size == b.size


def _tokens_agree(ours: dict[str, Any] | None, theirs: dict[str, Any] | None) -> bool | None:
    """Whether two vocabularies hold the same tokens in the same order; None when either is not known."""
    if not ours or not theirs or "tokens" not in ours or "tokens" not in theirs:
        return None
    return bool(ours["count"] == theirs["count"] and ours["tokens"] == theirs["tokens"])


def meta_roles(reference: Checkpoint, candidate: Checkpoint) -> Roles:
    """Meta's layout (tokenizer.model alone) against a Hugging Face release, or the other way: the Hugging
    Face tokenizer files are Meta's tokenizer.model in another form. When the candidate carries the release's
    very tokenizer.model, they are not missing; when only one side has a tokenizer.model, the vocabularies'
    tokens are compared (a differing one is a change; agreeing ones leave the scores unchecked, a doubt)."""
    roles = Roles()
    missing = released(reference, candidate)
    theirs = {f.path: f for f in candidate.files}
    ref_model = next((f for f in reference.files if f.path == TOKENIZER_MODEL), None)
    cand_model = theirs.get(TOKENIZER_MODEL)
    if ref_model is not None and cand_model is not None and _same_file(ref_model, cand_model):
        for name in HF_TOKENIZER:
            if name in missing:
                roles.stand_in(missing[name], f"{TOKENIZER_MODEL}, the release's own")
    else:
        pairs = [  # (the release's vocabulary file, the candidate's in the other form)
            (missing.get(TOKENIZER_JSON), cand_model),
            (missing.get(TOKENIZER_MODEL), theirs.get(TOKENIZER_JSON)),
        ]
        for ref_file, cand_file in pairs:
            if ref_file is None or cand_file is None:
                continue
            agree = _tokens_agree(ref_file.meaning, cand_file.meaning)
            if agree is False:
                roles.changes.append(f"{cand_file.path}'s tokens differ from the release's {ref_file.path}")
            elif agree:
                roles.stand_in(ref_file, cand_file.path)
                roles.dropped.add(cand_file.path)  # not a file added: the release's vocabulary in this layout's form
                for name in HF_TOKENIZER:
                    if name in missing and name != ref_file.path:
                        roles.stand_in(missing[name], f"{cand_file.path}, the release's tokens")
                roles.doubts.append(
                    f"{cand_file.path} holds the release's {ref_file.path} tokens, but its scores (how it splits "
                    f"text) have no counterpart in the release: a change of them cannot be ruled out; the "
                    f"release's own {TOKENIZER_MODEL} would decide"
                )
    for name in HF_ONLY:
        if name in missing:
            roles.stand_in(missing[name], "nothing: a Hugging Face file Meta's layout has no counterpart of")
    return roles


def _special_pieces(model: FileFingerprint | None) -> dict[str, Any]:
    return dict((model.meaning or {}).get("special_tokens") or {}) if model is not None else {}


LLAMA_TOKENIZERS = ("LlamaTokenizer", "LlamaTokenizerFast")


def _like_metas(meaning: dict[str, Any], model: FileFingerprint) -> bool:
    """Whether a Hugging Face tokenizer_config.json or special_tokens_map.json says only what Meta's
    tokenizer.model does: its special tokens, tokens added only where the model has them, BOS added and EOS
    not (Meta's code), a Llama tokenizer class, no chat template and no code of its own."""
    pieces = _special_pieces(model)
    named = {k: v for k, v in meaning.items() if k in ("bos_token", "eos_token", "unk_token", "pad_token")}
    by_id = {str(v): pieces.get(f"{k}_token") for k, v in ((model.meaning or {}).get("special") or {}).items()}
    return (
        all(pieces.get(k) == v for k, v in named.items())
        and all(by_id.get(i) == text for i, (text, _) in (meaning.get("added_tokens") or {}).items())
        and meaning.get("add_bos_token", True) is True
        and meaning.get("add_eos_token", False) is False
        and meaning.get("tokenizer_class", LLAMA_TOKENIZERS[0]) in LLAMA_TOKENIZERS
        and "chat_template" not in meaning
        and "chat_templates" not in meaning  # named ones: transformers applies "tool_use" when given tools
        and "auto_map" not in meaning
    )


# What Hugging Face's Llama converter writes in generation_config.json (with the tool's own records)
GENERATION_KEYS = frozenset(
    {"do_sample", "temperature", "top_p", "bos_token_id", "eos_token_id", "pad_token_id"}
    | {"transformers_version", "_from_model_config"}
)


def _like_converters(meaning: dict[str, Any], model: FileFingerprint | None) -> bool:
    """Whether generation_config.json says only what the converter writes: sampling defaults and, as the
    ids generation starts and stops at, special tokens of the release's tokenizer.model (transformers'
    generate stops at its eos ids; any other key, a banned or forced token, changes what is generated)."""
    special = set(((model.meaning or {}).get("special") or {}).values()) if model is not None else set()
    ids: list[Any] = []
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        value = meaning.get(key)
        ids += value if isinstance(value, list) else [] if value is None else [value]
    return set(meaning) <= GENERATION_KEYS and all(type(i) is int and i in special for i in ids)


def hugging_face_extras(reference: Checkpoint, candidate: Checkpoint) -> tuple[set[str], Roles]:
    """A Hugging Face download against Meta's release: the Hugging Face side files it adds, judged against
    Meta's tokenizer.model. tokenizer.json with the release's tokens (its merges unchecked: a doubt),
    tokenizer_config.json and special_tokens_map.json naming the release's special tokens and no chat
    template, and generation_config.json (transformers' generation defaults) are the release's in another
    form, not files added; the names of those to leave out of the comparison, and what was found."""
    roles = Roles()
    ref_paths = {f.path for f in reference.files}
    model = next((f for f in reference.files if f.path == TOKENIZER_MODEL), None)
    accepted: set[str] = set()
    for f in candidate.files:
        if f.path in ref_paths or f.meaning is None:
            continue
        if f.path == TOKENIZER_JSON and model is not None:
            agree = _tokens_agree(model.meaning, f.meaning)
            if agree:
                accepted.add(f.path)
                roles.played.append(f"{TOKENIZER_MODEL} by {f.path} (the same tokens)")
                roles.doubts.append(
                    f"{f.path} holds the release's {TOKENIZER_MODEL} tokens, but its merges (how it splits text) "
                    f"cannot be checked against the release's scores: a change of them cannot be ruled out"
                )
            elif agree is False:
                roles.changes.append(f"{f.path}'s tokens differ from the release's {TOKENIZER_MODEL}")
        elif f.path in ("tokenizer_config.json", "special_tokens_map.json") and model is not None:
            if _like_metas(f.meaning, model):
                accepted.add(f.path)
                roles.played.append(f"{f.path}'s special tokens by the release's {TOKENIZER_MODEL}")
        elif f.path == "generation_config.json" and _like_converters(f.meaning, model):
            accepted.add(f.path)
            roles.played.append(f"{f.path} by nothing: transformers' generation defaults, which Meta's layout has not")
    return accepted, roles
