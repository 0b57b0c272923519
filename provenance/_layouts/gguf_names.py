"""llama.cpp GGUF files read as the Hugging Face Llama layout.

llama.cpp names tensors `blk.N.attn_q.weight` and keeps q and k rows in Meta's rotary order; the head
counts are in the file's key-values. Plain tensors (F16, BF16, F32) are rebuilt in the Hugging Face order
from their bytes and digested, so the same numbers give the same digest. Quantized tensors (Q8_0, Q4_K,
...) cannot match a float digest: they are dequantized with the gguf package, put in the same order, and
sketched, so the comparison can tell a quantization of the release (`quantized`) from a change; their
blocks, in the same order, are digested for a manifest that records the reference quantizer's (exact).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import NamedTuple

from blake3 import blake3

from manifests.dtypes import DTYPE_BITS
from manifests.records import Checkpoint, FileFingerprint, TensorFingerprint
from provenance._hashing.sketch import SketchBuilder, sample_positions
from provenance._judging.quantization import grid_at
from provenance._layouts.interface import Adapted
from provenance._layouts.llama import CONFIG, MAX_HEADS, wants_hugging_face
from provenance._layouts.settings import gguf_against_config, recorded, release_document
from provenance._layouts.side_roles import Roles, gguf_roles
from provenance._layouts.tensors import elements, hugging_face_rows, permuted, rebuilt, tensor_bytes

_NAMES = {
    "token_embd.weight": ("model.embed_tokens.weight", None),
    "output_norm.weight": ("model.norm.weight", None),
    "output.weight": ("lm_head.weight", None),
}
_PER_LAYER = {
    "attn_q.weight": ("self_attn.q_proj.weight", "q"),
    "attn_k.weight": ("self_attn.k_proj.weight", "k"),
    "attn_v.weight": ("self_attn.v_proj.weight", None),
    "attn_output.weight": ("self_attn.o_proj.weight", None),
    "ffn_gate.weight": ("mlp.gate_proj.weight", None),
    "ffn_down.weight": ("mlp.down_proj.weight", None),
    "ffn_up.weight": ("mlp.up_proj.weight", None),
    "attn_norm.weight": ("input_layernorm.weight", None),
    "ffn_norm.weight": ("post_attention_layernorm.weight", None),
}
NOTE = (
    "read in llama.cpp's GGUF layout: tensor names mapped and the q and k rows permuted into the Hugging Face "
    "layout; quantized tensors dequantized to be compared with the release's sketches; the file's key-values "
    "play config.json's role, compared with the release's config.json by meaning"
)


def hugging_face_name(name: str) -> tuple[str, str | None] | None:
    if name in _NAMES:
        return _NAMES[name]
    parts = name.split(".", 2)
    if len(parts) == 3 and parts[0] == "blk" and parts[1].isdigit() and parts[2] in _PER_LAYER:
        hf, rope = _PER_LAYER[parts[2]]
        return f"model.layers.{parts[1]}.{hf}", rope
    return None


class GgufToHuggingFace:
    """llama.cpp GGUF files checked against a manifest in the Hugging Face layout."""

    name = "gguf-to-hugging-face"

    def comparable(self, reference: Checkpoint) -> Checkpoint:
        return reference

    def adapt(self, candidate: Checkpoint, reference: Checkpoint, *, sketch_all: bool = False) -> Adapted | None:
        if not wants_hugging_face(reference):
            return None
        root = candidate.require_root(f"the {self.name} layout adapter")
        wanted = {t.name: t for f in reference.files for t in f.tensors}
        files: list[FileFingerprint] = []
        changed = False
        problems: list[str] = []
        changes: list[str] = []
        config = release_document(candidate, reference, CONFIG)
        roles: Roles | None = None
        for f in candidate.files:
            keys = None
            if f.format == "gguf" and any(hugging_face_name(t.name) for t in f.tensors):
                keys = _model_keys(root / f.path, damaged=f.error is not None)
            if keys is None:  # not a llama GGUF, or one cut short before its key-values could be read
                files.append(f)
                continue
            disagree = [] if config is None else gguf_against_config(keys.values, config)
            changes.extend(f"{f.path}: {change}" for change in disagree)  # llama.cpp builds from the key-values
            if roles is None and f.error is None:  # the first whole GGUF plays the release's side files
                roles = _roles(root / f.path, f.path, config is not None and not disagree, reference, candidate)
            tensors = tuple(_mapped(root / f.path, t, keys, wanted, problems, sketch_all) for t in f.tensors)
            files.append(dataclasses.replace(f, tensors=tensors, container_blake3=None, rebuilt=True))
            changed = True
        roles = roles or Roles()
        note = "; ".join([NOTE, *([roles.note()] if roles.played else []), *problems])
        if not changed:
            return None
        adapted = dataclasses.replace(
            candidate,
            files=(*files, *roles.stand_ins),
            layout_changes=(*candidate.layout_changes, *changes, *roles.changes),
            layout_doubts=(
                *candidate.layout_doubts,
                *([CONFIG_UNKNOWN] if config is None and recorded(reference, CONFIG) else []),
                *roles.doubts,
            ),
        )
        return Adapted(adapted, reference, note, (self.name,))


class GgufKeyValues:
    """A GGUF download checked against a manifest of GGUF files: llama.cpp builds the model from the
    key-values (architecture, head counts, rotary base, norm epsilon, chat template), which the manifest
    records only inside the digest of the bytes outside the tensors. A GGUF whose non-tensor bytes are none
    of the release's GGUFs' describes, as far as the manifest can tell, another model."""

    name = "gguf-key-values"

    def comparable(self, reference: Checkpoint) -> Checkpoint:
        return reference

    def adapt(self, candidate: Checkpoint, reference: Checkpoint, *, sketch_all: bool = False) -> Adapted | None:
        released = {f.container_blake3 for f in reference.files if f.format == "gguf" and f.has_layout}
        if not released:
            return None
        changes = [
            f"{f.path}: the GGUF's key-values or header differ from every GGUF of the release (llama.cpp builds "
            f"the model from its key-values, which the manifest records by digest only)"
            for f in candidate.files
            if f.format == "gguf" and f.has_layout and not f.rebuilt and f.container_blake3 not in released
        ]
        if not changes:
            return None
        adapted = dataclasses.replace(candidate, layout_changes=(*candidate.layout_changes, *changes))
        return Adapted(adapted, reference, "", ())


def _roles(path: Path, name: str, config_agrees: bool, reference: Checkpoint, candidate: Checkpoint) -> Roles:
    """The release's config and tokenizer files this GGUF plays the role of, from its key-values."""
    from provenance._formats.gguf_vocabulary import tokenizer_summary
    from provenance.errors import MalformedContainer

    try:
        with open(path, "rb") as stream:
            summary = tokenizer_summary(stream, os.fstat(stream.fileno()).st_size, name)
    except (MalformedContainer, OSError):  # its layout was read: only a changed file fails here
        return Roles()
    return gguf_roles(name, summary, config_agrees, reference, candidate)


CONFIG_UNKNOWN = (
    "the release's config.json is recorded by digest only, so the GGUF's key-values (head counts, rotary base, "
    "norm epsilon) cannot be checked against it; the release's config.json beside the GGUF would decide"
)
HEADS = "llama.attention.head_count"
KV_HEADS = "llama.attention.head_count_kv"


class _Keys(NamedTuple):
    heads: int
    kv_heads: int
    weighted: bool  # quantized with an importance matrix: levels may sit one off the nearest
    values: dict[str, int | float | bool | str]  # the scalar and string key-values, held against config.json


def _model_keys(path: Path, *, damaged: bool = False) -> _Keys | None:
    """What the mapping needs from the file's key-values: head counts, and whether llama.cpp recorded an
    importance matrix (`quantize.imatrix.*`), whose quantizers may move a level off the nearest. None for a
    damaged file whose key-values cannot be read."""
    from provenance._formats.gguf import read_key_values
    from provenance.errors import MalformedContainer

    # This project's reader, not the gguf package's: GGUFReader builds numpy objects for every array item
    # of a hostile header (millions of key-values or strings), where this one is bounded.
    try:
        with open(path, "rb") as stream:
            values = read_key_values(stream, os.fstat(stream.fileno()).st_size, path.name)
    except MalformedContainer:
        if damaged:  # a file cut short inside its header: its key-values say nothing
            return None
        raise
    except OSError as exc:
        raise MalformedContainer(path.name, f"its key-values cannot be read ({exc.strerror})") from None

    def number(key: str) -> int | None:
        value = values.get(key)
        if value is None:
            return None
        if type(value) is not int:
            raise MalformedContainer(path.name, f"{key} is not an integer")
        return value

    weighted = any(key.startswith("quantize.imatrix.") for key in values)
    return _checked(path, number(HEADS), number(KV_HEADS), weighted)._replace(values=values)


def _checked(path: Path, heads: int | None, kv_heads: int | None, weighted: bool) -> _Keys:
    """Head counts a mapping can use: present, positive, bounded, the first a multiple of the second."""
    from provenance.errors import MalformedContainer

    if heads is None:
        raise MalformedContainer(path.name, f"a llama GGUF without {HEADS}")
    for key, value in ((HEADS, heads), (KV_HEADS, kv_heads)):
        if value is not None and not 0 < value <= MAX_HEADS:
            raise MalformedContainer(path.name, f"{key} = {value} is not a head count")
    kv_heads = kv_heads or heads
    if heads % kv_heads:
        raise MalformedContainer(path.name, f"{heads} attention heads are not a multiple of {kv_heads} key-value heads")
    return _Keys(heads, kv_heads, weighted, {})


def _mapped(
    path: Path,
    tensor: TensorFingerprint,
    keys: _Keys,
    wanted: dict[str, TensorFingerprint],
    problems: list[str],
    sketch_all: bool,
) -> TensorFingerprint:
    import numpy as np

    named = hugging_face_name(tensor.name)
    if named is None or tensor.view:
        return tensor
    name, rope = named
    if not tensor.intact:  # cut short: reported under the release's name
        return tensor._replace(name=name)
    group = keys.heads if rope == "q" else keys.kv_heads
    if tensor.dtype in DTYPE_BITS:
        if rope is None:  # the same bytes in the same place: only the name changes
            return tensor._replace(name=name)
        values = permuted(hugging_face_rows, elements(path, tensor), group, tensor.name, problems)
        return rebuilt(name, tensor.dtype, values, wanted.get(name), sketch_all=sketch_all)
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize

    kind = GGMLQuantizationType[tensor.dtype]
    rows = int(np.prod(tensor.shape[:-1])) if len(tensor.shape) > 1 else 1
    stored = tensor_bytes(path, tensor)
    try:
        with np.errstate(all="ignore"):  # NaN or Inf scales dequantize to what they are, without a warning
            floats = dequantize(np.frombuffer(stored, dtype=np.uint8).reshape(rows, -1), kind).reshape(tensor.shape)
    except NotImplementedError:  # a type the gguf package cannot dequantize (Q8_K, Q8_1): compared as it is
        return tensor._replace(name=name)
    positions = sample_positions(name, tensor.shape)  # in the Hugging Face order the sketch samples
    digest = tensor.blake3
    if rope is not None:
        digest = _blocks_in_hugging_face_order(stored, rows, group)
        floats = permuted(hugging_face_rows, floats, group, tensor.name, problems)
        source = permuted(hugging_face_rows, np.arange(rows).reshape(rows, 1), group, "", [])[:, 0]  # stored rows
        cols = tensor.shape[-1]
        positions = source[positions // cols] * cols + positions % cols
    builder = SketchBuilder(name, "F32", tensor.shape, casts=False)  # no float digest can match quantized blocks
    builder.update(np.ascontiguousarray(floats, dtype=np.float32).data)
    sketch = dataclasses.replace(builder.finish(), grid=grid_at(tensor.dtype, stored, positions, keys.weighted))
    # A quantized tensor is identified by its raw blocks (q and k: their rows in the Hugging Face order, as
    # the release's quantization digest orders them), compared by its sketch.
    return TensorFingerprint(name, tensor.dtype, tensor.shape, 0, 0, digest, True, sketch=sketch)


def _blocks_in_hugging_face_order(stored: bytes, rows: int, heads: int) -> str:
    """The BLAKE3 of q or k's quantized rows moved back into the Hugging Face order. Blocks run along a row,
    so the converter's row permutation moves whole rows of blocks: these are the blocks it quantized, in the
    order the release's values have them. Rows the head count does not fit stay as stored (and cannot match)."""
    import numpy as np

    blocks = np.frombuffer(stored, dtype=np.uint8).reshape(rows, -1)
    ordered = np.ascontiguousarray(permuted(hugging_face_rows, blocks, heads, "", []))
    return blake3(ordered.data).hexdigest()


__all__ = ["NOTE", "GgufKeyValues", "GgufToHuggingFace", "hugging_face_name"]
