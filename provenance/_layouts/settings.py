"""The settings a loader builds the model from, held against the release's across layouts.

A layout adapter proves the tensors; the model a loader builds also depends on the settings beside them
(Meta's params.json, Hugging Face's config.json, a GGUF's key-values): the head counts q and k are
permuted by, the norm epsilon, the rotary base, the activation. These are compared by meaning, the way
the converters write one from the other. A manifest records the meaning of the release's settings file
(older ones its digest only, so that its content is known only when the candidate carries the very same
file).
"""

from __future__ import annotations

import math
import struct
from typing import Any

from manifests.records import Checkpoint, Role
from provenance._formats.side_files import PARSED

ROPE_BASE = 10000.0  # what both Meta's code and transformers use when nothing says otherwise
META_MULTIPLE_OF = 256  # Meta's ModelArgs default
META_NORM_EPS = 1e-5  # Meta's ModelArgs default

Value = int | float | bool | str | None
Pair = tuple[str, Value, str, Value]


def recorded(reference: Checkpoint, name: str) -> bool:
    """Whether the release has a settings file `name` (a release without one leaves nothing to hold against)."""
    return any(f.path == name and f.role is Role.OTHER for f in reference.files)


def release_document(candidate: Checkpoint, reference: Checkpoint, name: str) -> dict[str, Any] | None:
    """The release's settings file `name`: its meaning as the manifest records it, else read from the
    candidate's copy (under its root) when its digest is the release's; None when neither is at hand (an
    older manifest holds the digest, not the content)."""
    from provenance._layouts.llama import _read_json

    root = candidate.require_root(f"reading the release's {name}")
    released = [f for f in reference.files if f.path == name and f.role is Role.OTHER]
    if released and released[0].meaning is not None and name in PARSED:
        return dict(released[0].meaning)
    carried = [f for f in candidate.files if f.path == name and f.error is None]
    if not released or not carried or not (root / name).is_file():  # not there: a stand-in of another adapter
        return None
    ref, cand = released[0], carried[0]
    common = [a for a in ref.digests if a in cand.digests]
    if not common or any(ref.digests[a] != cand.digests[a] for a in common):
        return None
    return _read_json(root / name, f"the release's {name}")


def _rope_theta(config: dict[str, Any]) -> Value:
    parameters = config.get("rope_parameters")
    if isinstance(parameters, dict) and "rope_theta" in parameters:
        return parameters["rope_theta"]  # type: ignore[no-any-return]
    return config.get("rope_theta", ROPE_BASE)  # type: ignore[no-any-return]


def _rope_scaled(config: dict[str, Any]) -> bool:
    for key in ("rope_scaling", "rope_parameters"):
        value = config.get(key)
        if isinstance(value, dict) and value.get("rope_type", value.get("type", "default")) not in (None, "default"):
            return True
    return False


def _rope_type(config: dict[str, Any]) -> str:
    """The config's rotary scaling as llama.cpp names it ("none" for the default embedding)."""
    for key in ("rope_scaling", "rope_parameters"):
        value = config.get(key)
        if isinstance(value, dict):
            kind = value.get("rope_type", value.get("type", "default"))
            return "none" if kind in (None, "default") else str(kind)
    return "none"


def _rope_scaling_pairs(values: dict[str, int | float | bool | str], config: dict[str, Any]) -> list[Pair]:
    """The GGUF's rotary scaling type and factor against the config's: the converter writes linear and yarn
    scaling as key-values (Llama 3's scaling as a rope_freqs tensor, compared as a tensor)."""
    ours = values.get("llama.rope.scaling.type", "none")
    theirs = _rope_type(config)
    if ours == "none" and theirs not in ("linear", "yarn"):
        return []
    pairs: list[Pair] = [("llama.rope.scaling.type", ours, "rope_scaling type", theirs)]
    scaling = config.get("rope_scaling") or config.get("rope_parameters") or {}
    if "llama.rope.scaling.factor" in values or (isinstance(scaling, dict) and "factor" in scaling):
        factor = scaling.get("factor") if isinstance(scaling, dict) else None
        pairs.append(
            ("llama.rope.scaling.factor", _float32(values.get("llama.rope.scaling.factor")), "factor", _float32(factor))
        )
    return pairs


def _intermediate(params: dict[str, Any]) -> Value:
    """The feed-forward width Meta's code (and the Hugging Face converter) computes from params.json."""
    dim, multiple_of = params.get("dim"), params.get("multiple_of", META_MULTIPLE_OF)
    multiplier = params.get("ffn_dim_multiplier")
    if type(dim) is not int or type(multiple_of) is not int or multiple_of <= 0:
        return None
    hidden = int(2 * (4 * dim) / 3)
    if isinstance(multiplier, int | float) and not isinstance(multiplier, bool):
        hidden = int(multiplier * hidden)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


def _same(a: Value, b: Value) -> bool:
    if isinstance(a, bool) or isinstance(b, bool) or isinstance(a, str) or isinstance(b, str):
        return a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)
    return a == b


def config_against_params(config: dict[str, Any], params: dict[str, Any]) -> list[tuple[str, Value, str, Value]]:
    """Where a Hugging Face config.json and Meta's params.json describe different models: (config key, its
    value, params key, its value). Keys the config leaves out are compared where transformers' default is
    the same as Meta's (rotary base, activation); the norm epsilon and feed-forward width where it states them."""
    heads = config.get("num_attention_heads")
    n_heads = params.get("n_heads")
    pairs: list[tuple[str, Value, str, Value]] = [
        ("hidden_size", config.get("hidden_size"), "dim", params.get("dim")),
        ("num_hidden_layers", config.get("num_hidden_layers"), "n_layers", params.get("n_layers")),
        ("num_attention_heads", heads, "n_heads", n_heads),
        (
            "num_key_value_heads",
            config.get("num_key_value_heads") or heads,
            "n_kv_heads",
            params.get("n_kv_heads") or n_heads,
        ),
        ("rope_theta", _rope_theta(config), "rope_theta", params.get("rope_theta", ROPE_BASE)),
        ("hidden_act", config.get("hidden_act", "silu"), "(Meta's SwiGLU)", "silu"),
        ("rope_scaling", _rope_scaled(config), "use_scaled_rope", bool(params.get("use_scaled_rope", False))),
    ]
    for key in ("tie_word_embeddings", "attention_bias", "mlp_bias"):
        pairs.append((key, bool(config.get(key, False)), "(Meta's layout has none)", False))
    vocab = params.get("vocab_size")
    if isinstance(vocab, int) and vocab > 0:  # LLaMA 1 writes -1: the tokenizer decides, the shapes check it
        pairs.append(("vocab_size", config.get("vocab_size"), "vocab_size", vocab))
    if "rms_norm_eps" in config:
        pairs.append(("rms_norm_eps", config["rms_norm_eps"], "norm_eps", params.get("norm_eps", META_NORM_EPS)))
    if "intermediate_size" in config:
        pairs.append(
            ("intermediate_size", config["intermediate_size"], "multiple_of/ffn_dim_multiplier", _intermediate(params))
        )
    return [(ck, cv, pk, pv) for ck, cv, pk, pv in pairs if not _same(cv, pv)]


def _float32(value: Value) -> Value:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(struct.unpack("<f", struct.pack("<f", float(value)))[0])
    return value


def gguf_against_config(values: dict[str, int | float | bool | str], config: dict[str, Any]) -> list[str]:
    """Where a llama GGUF's key-values describe another model than the release's config.json (llama.cpp
    builds the model from the key-values): the disagreements, named by key."""
    arch = values.get("general.architecture")
    if arch != "llama":
        return [f"the GGUF's general.architecture is {arch!r}, where the release's config.json is a Llama model"]
    heads = values.get("llama.attention.head_count")
    config_heads = config.get("num_attention_heads")
    pairs: list[tuple[str, Value, str, Value]] = [
        ("llama.attention.head_count", heads, "num_attention_heads", config_heads),
        (
            "llama.attention.head_count_kv",
            values.get("llama.attention.head_count_kv", heads),
            "num_key_value_heads",
            config.get("num_key_value_heads") or config_heads,
        ),
        (
            "llama.rope.freq_base",
            _float32(values.get("llama.rope.freq_base", ROPE_BASE)),
            "rope_theta",
            _float32(_rope_theta(config)),
        ),
    ]
    optional = [
        ("llama.embedding_length", "hidden_size"),
        ("llama.block_count", "num_hidden_layers"),
        ("llama.feed_forward_length", "intermediate_size"),
        ("llama.context_length", "max_position_embeddings"),
        ("llama.vocab_size", "vocab_size"),
        ("llama.attention.layer_norm_rms_epsilon", "rms_norm_eps"),
    ]
    for key, config_key in optional:
        if key in values and config_key in config:
            theirs = _float32(config[config_key]) if key.endswith("epsilon") else config[config_key]  # GGUF: F32
            pairs.append((key, values[key], config_key, theirs))
    pairs.append(("(llama.cpp's SwiGLU)", "silu", "hidden_act", config.get("hidden_act", "silu")))
    pairs += _rope_scaling_pairs(values, config)
    return [
        f"the GGUF's {key} = {ours!r} where the release's config.json gives {theirs_key} = {theirs!r}"
        for key, ours, theirs_key, theirs in pairs
        if not _same(ours, theirs)
    ]
