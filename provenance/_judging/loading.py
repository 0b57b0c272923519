"""What a loader does with a candidate folder: the files it picks up, the shard indexes it follows, the
file from_pretrained prefers. A candidate whose tensors all match can still load something else.
"""

from __future__ import annotations

import fnmatch
import posixpath

from manifests.records import Checkpoint, Role, ShardIndex, is_weights_file
from provenance._hashing.scan import PICKLES
from provenance._judging.matching import FOUND, TensorOutcome
from provenance._judging.wording import names, plural
from provenance.report import FileResult, FileStatus

# Files a loader or a framework never reads (documentation, licences, images, git attributes, Meta's
# checklist.chk of md5 sums): listed when added, without changing the verdict. Anything
# else beside the weights may be picked up (weights in any format, adapters, code, pickles, chat templates,
# configs, tokenizer files such as merges.txt and vocab.txt): at most `modified`.
INERT_SUFFIXES = (".md", ".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp")
INERT_NAMES = (
    "readme*",
    "license*",
    "licence*",
    "copying*",
    "notice*",
    ".gitattributes",
    ".gitignore",
    "checklist.chk",
)
# What transformers' from_pretrained opens in a folder, first found first: one file shadows the rest.
PREFERRED = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
# Every name it may open by itself, with a variant (`variant="fp16"` inserts it before the last suffix).
ENTRY_POINTS = (
    *PREFERRED,
    "model.*.safetensors",
    "model.safetensors.index.*.json",
    "pytorch_model.*.bin",
    "pytorch_model.bin.index.*.json",
    "tf_model.h5",
    "flax_model.msgpack",
)


# Suffixes something loads whatever the name before them (README.bin is a PyTorch file to torch.load).
LOADABLE_SUFFIXES = (*PICKLES, ".index.json", ".py", ".h5", ".msgpack", ".onnx", ".npy", ".npz", ".joblib")


def is_inert(path: str) -> bool:
    """Whether an added file is one no loader reads: documentation, licences, images, git attributes. A
    file a weights reader claims, a pickle or code is never inert, whatever its name."""
    base = posixpath.basename(path).lower()
    if is_weights_file(base) or base.endswith(LOADABLE_SUFFIXES):
        return False
    if base.endswith(INERT_SUFFIXES):
        return True
    # By name only as plain text: additional_chat_templates/readme.jinja is a template the tokenizer loads.
    suffix = posixpath.splitext(base)[1]
    plain = suffix in ("", ".txt", ".rst") or suffix[1:].isdigit()  # LICENSE, LICENSE.txt, LICENSE-2.0
    return plain and any(fnmatch.fnmatchcase(base, pattern) for pattern in INERT_NAMES)


def may_pick_up(path: str, role: Role, hazard: str | None = None) -> bool:
    """The one rule for an added file that holds no weights (weights and shard indexes are judged by what
    they hold and where they point): a loader or a framework may pick it up, so it changes what loads,
    unless it is inert and nothing flagged it."""
    return role is Role.OTHER and (hazard is not None or not is_inert(path))


def loading_problems(
    reference: Checkpoint,
    candidate: Checkpoint,
    files: list[FileResult],
    file_status: dict[str, FileStatus],
    outcome: TensorOutcome,
) -> list[str]:
    """What would make a loader load something else than the release's tensors from this candidate: added
    files it may pick up, shard indexes that send it elsewhere, a preferred file that shadows the rest."""
    reasons: list[str] = []
    added = _added_files(reference, candidate, files, outcome)
    if added:
        reasons.append(f"{plural(len(added), 'file')} added: {names(added)}")
    for index in candidate.indexes:
        if file_status.get(index.path) is FileStatus.MATCH:
            continue  # the release's own index, byte for byte
        wrong = _index_errors(reference, candidate, index, outcome)
        if wrong:
            reasons.append(
                f"{index.path} sends {plural(len(wrong), 'tensor')} where a loader would not load the release's: "
                f"{names(wrong)}"
            )
    return reasons + _shadowing(reference, candidate, file_status, outcome)


def _added_files(
    reference: Checkpoint, candidate: Checkpoint, files: list[FileResult], outcome: TensorOutcome
) -> list[str]:
    """Extra files that change what may load: each named, with why."""
    by_path = {f.path: f for f in candidate.files}
    indexed = set(candidate.weight_map.values())
    ref_weights_whole = all(
        r.status is FileStatus.MATCH for r in files if r.role == Role.WEIGHTS.value and r.status is not FileStatus.EXTRA
    )
    added: list[str] = []
    for r in files:
        cand = by_path.get(r.name)
        if r.status is not FileStatus.EXTRA or cand is None or cand.role is Role.INDEX:
            continue
        if cand.role is not Role.WEIGHTS:
            if may_pick_up(r.name, cand.role, cand.hazard):
                added.append(f"{r.name}{f' ({cand.hazard})' if cand.hazard else ''}")
            continue
        if cand.hazard is not None:
            added.append(f"{r.name} ({cand.hazard})")
        elif not reference.tensor_level:  # its tensors cannot be told; only beside the release's whole weights
            if ref_weights_whole:
                added.append(f"{r.name} (weights the reference's whole-file digests cannot place)")
        elif candidate.in_another_layout and not cand.tensors and cand.error is None:
            continue  # its tensors were rebuilt in the reference's layout and compared there
        elif cand.error is not None and not cand.tensors:
            if r.name not in indexed:  # not a shard the candidate's own index expects: a file nothing explains
                added.append(f"{r.name} (unreadable: {cand.error})")
        elif r.name in outcome.foreign:
            added.append(f"{r.name} (holds {names(outcome.foreign[r.name])}, not the release's)")
    return added


def _index_errors(reference: Checkpoint, candidate: Checkpoint, index: ShardIndex, outcome: TensorOutcome) -> list[str]:
    """Entries of a candidate's shard index that do not point a release tensor to a checked file holding
    it as judged (the release's digest, or the copy the comparison judged); others' losses are left to
    the missing-shard logic."""
    if index.error is not None:
        return [f"all of them ({index.error}: a loader following it fails or reads other files)"]
    by_path = {f.path: f for f in candidate.files}
    ref_digests = {(t.name, t.blake3, t.dtype, t.shape) for f in reference.files for t in f.tensors}
    ref_names = {name for name, *_ in ref_digests}
    found = {t.name for t in outcome.results if t.file is not None and t.status in FOUND}
    wrong: list[str] = []
    for e in index.entries:
        where = f"{e.tensor} -> {e.target}"
        if e.path is None:
            wrong.append(f"{where} (outside the checkpoint)")
            continue
        cand = by_path.get(e.path)
        if cand is None:
            if e.on_disk:
                wrong.append(f"{where} (a file this check does not read)")
            elif e.tensor in found:
                wrong.append(f"{where} (no such file; the tensor is in another)")
            continue  # else a shard that never arrived: the tensor is missing with it
        if cand.error is not None or candidate.in_another_layout or not reference.tensor_level:
            continue  # a damaged shard is judged as damage; another layout's names are the adapter's
        if e.tensor not in ref_names:
            wrong.append(f"{where} (not a tensor of the release)")
            continue
        copies = [t for t in cand.tensors if t.name == e.tensor and t.path is None]  # an index names flat keys
        if not copies:
            wrong.append(f"{where} (that file does not hold it)")
        elif not any(
            (e.path, t.name) in outcome.hits or (t.name, t.blake3, t.dtype, t.shape) in ref_digests for t in copies
        ):
            wrong.append(f"{where} (that file's copy is not the release's)")
    return wrong


def _shadowing(
    reference: Checkpoint, candidate: Checkpoint, file_status: dict[str, FileStatus], outcome: TensorOutcome
) -> list[str]:
    """from_pretrained opens the first of PREFERRED it finds and nothing else, and its options (a variant,
    use_safetensors=False) open another: the first one, and every added one, must place every tensor of
    the release's top-level weights as found."""
    if candidate.in_another_layout or not reference.tensor_level:
        return []
    paths = {f.path for f in candidate.files} | {i.path for i in candidate.indexes}
    first = next((name for name in PREFERRED if name in paths), None)
    opened = {name for name in paths if is_entry_point(name) and name not in file_status}  # added ones
    if first is not None and file_status.get(first) is not FileStatus.MATCH:
        opened.add(first)
    required = {t.name for f in reference.files if f.has_layout and "/" not in f.path for t in f.tensors}
    ref_digests = {(t.name, t.blake3, t.dtype, t.shape) for f in reference.files for t in f.tensors}
    found = {(r.candidate_file or r.file, r.name) for r in outcome.results if r.file is not None and r.status in FOUND}
    reasons: list[str] = []
    for name in sorted(opened):
        if name.endswith(".json"):
            index = next((i for i in candidate.indexes if i.path == name), None)
            placed = {e.tensor for e in index.entries} if index is not None else required
        else:
            held = next((f for f in candidate.files if f.path == name), None)
            if held is None or held.error is not None:  # damage: judged as such
                continue
            own = name in file_status  # the release's own file: its changed tensors are reported as such
            placed = {  # flat names only: a tensor nested in an object tree is not the key a loader looks up
                t.name
                for t in held.tensors
                if t.path is None
                and (own or (name, t.name) in found or (t.name, t.blake3, t.dtype, t.shape) in ref_digests)
            }
        absent = sorted(required - placed)
        if absent:
            reasons.append(
                f"{name} is what from_pretrained {'loads' if name == first else 'may load'}, and it does not hold "
                f"{plural(len(absent), 'tensor')} of the release: {names(absent)}"
            )
    return reasons


def is_entry_point(path: str) -> bool:
    """A top-level file from_pretrained opens by name, with or without a variant (model.fp16.safetensors,
    pytorch_model.bin.index.fp16.json), rather than because an index sends it there."""
    return "/" not in path and any(fnmatch.fnmatchcase(path, pattern) for pattern in ENTRY_POINTS)
