"""Checkpoints written by the real tools people convert weights with, built once per session on demand.

The release is a tiny LlamaForCausalLM (2 layers, hidden size 64, grouped-query attention) in float16,
saved by transformers' `save_pretrained` with the tokenizer files transformers writes from LLaMA's own
`tokenizer.model` (vocabulary 32000: llama.cpp's converter recognises it, and a smaller vocabulary would need a
tokenizer of our making). Its norm vectors are set away from the all-ones initialisation, as a trained
release's are, so that the rule "a shared non-trivial tensor is evidence of derivation" is exercised.

Every other output comes from the release through a real tool: `save_pretrained` again (`.bin`, other shard
sizes, `.to(float32)`, `.to(bfloat16)`, a fine-tune by noise or by a few `torch.optim` steps, another
seed), llama.cpp's `convert_hf_to_gguf.py` (f16, bf16, f32, q8_0) and transformers 4.47.1's
`convert_llama_weights_to_hf.py` on Meta consolidated shards (written here as Meta's `torch.save` wrote them).
The converters run as subprocesses of this Python; where they come from: tests/support/fetch_tools.py.

Imported only after torch and transformers are known to be installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.utils import logging as hf_logging

from tests.support.fetch_tools import LLAMA_CPP, META_CONVERTER, tools_folder

hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()

TOKENIZER = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "real" / "tokenizer.model"
HIDDEN, LAYERS, HEADS, KV_HEADS, VOCAB = 64, 2, 4, 2, 32000
INTERMEDIATE = 192  # what Meta's formula gives for dim 64 with multiple_of 32: the Meta round trip agrees
TOKENIZER_FILES = ("tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
SKETCHED: tuple[str, ...] = ("--sketches",)
PLAIN: tuple[str, ...] = ("--no-sketches",)  # a manifest without sketches
QUANT_DIGESTS: tuple[str, ...] = ("--sketches", "--quant-digests", "Q8_0")
MANIFEST_FLAGS = {"sketched": SKETCHED, "plain": PLAIN, "quant-digests": QUANT_DIGESTS}


@dataclass(frozen=True)
class Tools:
    """The two converter scripts, unpacked by fetch_tools."""

    convert_hf_to_gguf: Path
    convert_meta_to_hf: Path


def missing() -> str | None:
    """Why the real tools cannot run here (None when they can)."""
    folder = tools_folder()
    for path in (
        folder / LLAMA_CPP / "convert_hf_to_gguf.py",
        folder / META_CONVERTER / "convert_llama_weights_to_hf.py",
    ):
        if not path.is_file():
            return f"{path} is absent: run `python3 -m tests.support.fetch_tools` (.ci/run does)"
    if not TOKENIZER.is_file():
        return f"{TOKENIZER} is absent (LLaMA's tokenizer.model, from ../shared/fixtures/real/)"
    for module in ("sentencepiece", "google.protobuf"):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed (the test extra has it): the converters read tokenizer.model with it"
    return None


def find_tools() -> Tools:
    folder = tools_folder()
    return Tools(
        folder / LLAMA_CPP / "convert_hf_to_gguf.py", folder / META_CONVERTER / "convert_llama_weights_to_hf.py"
    )


# transformers 5 dropped the one call of 4.47.1's Meta converter that builds a tokenizer from a
# tokenizer.model path (`LlamaTokenizerFast(path)`): the script runs unchanged, with that name bound to
# transformers 5's own way of reading the same file. Everything else (the weights) is the script's code.
META_SHIM = """
import importlib.util, os, sys
import transformers

def LlamaTokenizerFast(vocab_file, **kwargs):
    return transformers.LlamaTokenizer.from_pretrained(os.path.dirname(vocab_file), local_files_only=True, **kwargs)

sys.argv = sys.argv[1:]
spec = importlib.util.spec_from_file_location("convert_llama_weights_to_hf", sys.argv[0])
script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(script)
script.LlamaTokenizerFast = LlamaTokenizerFast
script.main()
"""


def run_tool(script: Path, *args: str | Path | int, shim: str | None = None) -> None:
    """A converter as a subprocess of this Python, offline; its output only shown when it fails."""
    env = os.environ | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, *(("-c", shim) if shim else ()), str(script), *map(str, args)]
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{script.name} {' '.join(map(str, args))} failed:\n{proc.stdout}\n{proc.stderr}")


def provenance(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """The installed CLI entry point in a subprocess (what a user runs)."""
    code = "import sys; from cli.app import main; sys.argv[0] = 'provenance'; main()"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True)


def release_config() -> LlamaConfig:
    return LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        intermediate_size=INTERMEDIATE,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        max_position_embeddings=4096,
        rms_norm_eps=1e-5,
        bos_token_id=1,
        eos_token_id=2,
    )


def tiny_model(seed: int) -> LlamaForCausalLM:
    """A freshly initialised tiny Llama whose norms look trained (not all ones)."""
    torch.manual_seed(seed)
    model = LlamaForCausalLM(release_config())
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.ndim == 1:
                parameter.copy_(1 + 0.1 * torch.randn_like(parameter))
    return model


def load(folder: Path, dtype: torch.dtype) -> LlamaForCausalLM:
    model: LlamaForCausalLM = LlamaForCausalLM.from_pretrained(folder, dtype=dtype, local_files_only=True)
    return model


def copy_tokenizer(release: Path, folder: Path) -> None:
    """A re-upload carries the release's tokenizer files as they are."""
    for name in TOKENIZER_FILES:
        if (release / name).is_file():
            shutil.copyfile(release / name, folder / name)


def write_tokenizer(folder: Path) -> None:
    """transformers' tokenizer files from LLaMA's tokenizer.model, as a release on the hub has them."""
    from transformers import LlamaTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(TOKENIZER, folder / "tokenizer.model")
    LlamaTokenizer.from_pretrained(folder, local_files_only=True).save_pretrained(folder)


def build_release(folder: Path) -> None:
    tiny_model(0).to(torch.float16).save_pretrained(folder)
    write_tokenizer(folder)


def unchanged(model: LlamaForCausalLM) -> None:
    """No change: a plain re-save."""


def resaved(
    dtype: torch.dtype,
    *,
    safe: bool = True,
    shard: str | None = None,
    change: Callable[[LlamaForCausalLM], None] = unchanged,
) -> Callable[[Path, Path], None]:
    """`from_pretrained` of the release, `change` applied, `save_pretrained` in `dtype` (and its tokenizer);
    not `safe`: the weights as pytorch_model.bin."""

    def build(release: Path, folder: Path) -> None:
        model = load(release, torch.float32 if dtype != torch.float16 else torch.float16)
        change(model)
        if shard is None:
            model.to(dtype).save_pretrained(folder)
        else:
            model.to(dtype).save_pretrained(folder, max_shard_size=shard)
        if not safe:
            # transformers 5 writes safetensors only; up to 4.x, safe_serialization=False wrote the state
            # dict with torch.save as pytorch_model.bin, beside the same config: done here the same way.
            torch.save(model.state_dict(), folder / "pytorch_model.bin")
            (folder / "model.safetensors").unlink()
        copy_tokenizer(release, folder)

    return build


def noise(model: LlamaForCausalLM) -> None:
    """A fine-tune by noise: 1% relative Gaussian noise on every matrix, the norms kept."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.ndim == 2:
                parameter.mul_(1 + 0.01 * torch.randn(parameter.shape, generator=generator).to(parameter.dtype))


def optimizer_steps(model: LlamaForCausalLM) -> None:
    """A fine-tune by a few AdamW steps on a few tokens, in float32 (every parameter moves, norms included)."""
    torch.manual_seed(2)
    model.float().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    tokens = torch.randint(3, VOCAB, (2, 16))
    for _ in range(3):
        loss = model(input_ids=tokens, labels=tokens).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()


def unrelated(release: Path, folder: Path) -> None:
    """Another seed, same architecture and dtype, same tokenizer and config."""
    tiny_model(9).to(torch.float16).save_pretrained(folder)
    copy_tokenizer(release, folder)


def gguf(outtype: str) -> Callable[[Path, Path], None]:
    """llama.cpp's convert_hf_to_gguf.py on the release folder: one GGUF alone in its folder."""

    def build(release: Path, folder: Path) -> None:
        folder.mkdir(parents=True)
        tool = find_tools().convert_hf_to_gguf
        run_tool(tool, release, "--outtype", outtype, "--outfile", folder / f"model-{outtype}.gguf")

    return build


def meta_rows(weight: torch.Tensor, heads: int) -> torch.Tensor:
    """q and k rows from the Hugging Face rotary order back to Meta's (the converter's `permute` inverted)."""
    rows, cols = weight.shape
    return weight.view(heads, 2, rows // heads // 2, cols).transpose(1, 2).reshape(rows, cols)


META_NAMES = {
    "self_attn.q_proj.weight": ("attention.wq.weight", 0),
    "self_attn.k_proj.weight": ("attention.wk.weight", 0),
    "self_attn.v_proj.weight": ("attention.wv.weight", 0),
    "self_attn.o_proj.weight": ("attention.wo.weight", 1),
    "mlp.gate_proj.weight": ("feed_forward.w1.weight", 0),
    "mlp.down_proj.weight": ("feed_forward.w2.weight", 1),
    "mlp.up_proj.weight": ("feed_forward.w3.weight", 0),
    "input_layernorm.weight": ("attention_norm.weight", None),
    "post_attention_layernorm.weight": ("ffn_norm.weight", None),
}


def write_meta(folder: Path, shards: int) -> None:
    """Meta's consolidated.NN.pth tensor-parallel shards (bfloat16, as LLaMA 2 shipped), params.json and
    tokenizer.model, from the seed-0 model: what Meta's download held."""
    folder.mkdir(parents=True)
    state = {k: v.to(torch.bfloat16) for k, v in tiny_model(0).state_dict().items()}
    pieces: list[dict[str, torch.Tensor]] = [{} for _ in range(shards)]

    def put(name: str, tensor: torch.Tensor, axis: int | None) -> None:
        for i, piece in enumerate(pieces):
            part = tensor if axis is None else tensor.chunk(shards, dim=axis)[i]
            piece[name] = part.clone().contiguous()

    put("tok_embeddings.weight", state["model.embed_tokens.weight"], 1)
    put("norm.weight", state["model.norm.weight"], None)
    put("output.weight", state["lm_head.weight"], 0)
    for layer in range(LAYERS):
        for hf, (meta, axis) in META_NAMES.items():
            tensor = state[f"model.layers.{layer}.{hf}"]
            if hf.startswith(("self_attn.q_proj", "self_attn.k_proj")):
                tensor = meta_rows(tensor, HEADS if "q_proj" in hf else KV_HEADS)
            put(f"layers.{layer}.{meta}", tensor, axis)
    head = HIDDEN // HEADS
    put("rope.freqs", (1.0 / (10000.0 ** (torch.arange(0, head, 2).float() / head))).to(torch.bfloat16), None)
    for i, piece in enumerate(pieces):
        torch.save(piece, folder / f"consolidated.{i:02d}.pth")
    params: dict[str, float] = {"dim": HIDDEN, "multiple_of": 32, "n_heads": HEADS, "n_kv_heads": KV_HEADS}
    params |= {"n_layers": LAYERS, "norm_eps": 1e-05, "vocab_size": -1}
    (folder / "params.json").write_text(json.dumps(params))
    shutil.copyfile(TOKENIZER, folder / "tokenizer.model")


def meta(shards: int) -> Callable[[Path, Path], None]:
    def build(release: Path, folder: Path) -> None:
        write_meta(folder, shards)

    return build


def meta_converted(source: str) -> Callable[[Workshop, Path], None]:
    """transformers' convert_llama_weights_to_hf.py (LLaMA 2) on a Meta folder of this workshop."""

    def build(workshop: Workshop, folder: Path) -> None:
        meta_folder = workshop.folder(source)
        shards = len(list(meta_folder.glob("consolidated.*.pth")))
        tool = find_tools().convert_meta_to_hf
        arguments = ("--input_dir", meta_folder, "--output_dir", folder, "--llama_version", "2", "--num_shards", shards)
        run_tool(tool, *arguments, shim=META_SHIM)
        # Run on the transformers 4 it shipped with, the script's tokenizer also wrote tokenizer.model (the
        # slow tokenizer's file, as in Llama 2's Hugging Face repositories); transformers 5 writes it no more.
        shutil.copyfile(meta_folder / "tokenizer.model", folder / "tokenizer.model")

    return build


CASES: dict[str, Callable[[Path, Path], None]] = {
    "resaved": resaved(torch.float16),
    "bin": resaved(torch.float16, safe=False),
    "shards": resaved(torch.float16, shard="1MB"),
    "float32": resaved(torch.float32),
    "bfloat16": resaved(torch.bfloat16),
    "noise": resaved(torch.float16, change=noise),
    "optimizer": resaved(torch.float32, change=optimizer_steps),
    "unrelated": unrelated,
    "gguf-f16": gguf("f16"),
    "gguf-bf16": gguf("bf16"),
    "gguf-f32": gguf("f32"),
    "gguf-q8_0": gguf("q8_0"),
    "meta-1": meta(1),
    "meta-2": meta(2),
}
CONVERTED: dict[str, Callable[[Workshop, Path], None]] = {
    "meta-1-hf": meta_converted("meta-1"),
    "meta-2-hf": meta_converted("meta-2"),
}


class Workshop:
    """Real outputs under one folder, each written the first time it is asked for, and their manifests."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._folders: dict[str, Path] = {}
        self._manifests: dict[tuple[str, str], Path] = {}

    def release(self) -> Path:
        return self.folder("release")

    def folder(self, name: str) -> Path:
        if name not in self._folders:
            folder = self.root / name
            shutil.rmtree(folder, ignore_errors=True)
            if name == "release":
                build_release(folder)
            elif name in CONVERTED:
                CONVERTED[name](self, folder)
            else:
                CASES[name](self.release(), folder)
            self._folders[name] = folder
        return self._folders[name]

    def manifest(self, name: str, kind: str) -> Path:
        """`provenance fingerprint` of an output, sketched, plain or with Q8_0 digests."""
        if (name, kind) not in self._manifests:
            path = self.root / f"{name}.{kind}.json"
            path.unlink(missing_ok=True)
            proc = provenance("fingerprint", self.folder(name), *MANIFEST_FLAGS[kind], "-o", path, "-q")
            if proc.returncode != 0:
                raise RuntimeError(f"fingerprint {name} ({kind}) failed: {proc.stderr.strip()}")
            self._manifests[name, kind] = path
        return self._manifests[name, kind]
