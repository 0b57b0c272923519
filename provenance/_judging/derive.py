"""A second look at tensors that do not match bit for bit, when the reference has sketches.

Only those tensors are read again (a matching checkpoint costs nothing more), and each gets the same
sketch the reference recorded: its canonical casts prove a dtype conversion in either direction, and its
sample, taken at the same positions as the reference's, measures how far the values moved.
"""

from __future__ import annotations

import dataclasses
import mmap
from pathlib import Path

from manifests.records import Checkpoint, FileFingerprint, TensorFingerprint
from provenance._hashing.castback import CastBack, needs_cast_back, upcast
from provenance._hashing.sketch import FLOAT_DTYPES, SketchBuilder

WINDOW = 64 << 20


def sketch_mismatches(reference: Checkpoint, candidate: Checkpoint) -> Checkpoint:
    """The candidate with a sketch on every intact float tensor whose same-named reference tensor has one
    and differs from it, or is a narrower dtype the candidate's F32 or F64 copy may be an upcast of: its cast
    back to that dtype (and whether every value survives it) proves the upcast without the reference's
    sketch; and on the vectors that match an unsketched reference's when nothing else shows derivation.
    Those tensors are read again from the candidate's root."""
    wider = {t.name: t.dtype for f in candidate.files for t in f.tensors if t.dtype in ("F32", "F64")}
    ref_tensors = {
        t.name: t
        for f in reference.files
        for t in f.tensors
        if t.sketch is not None or (t.name in wider and upcast(t.dtype, wider[t.name]))  # an upcast is cast back
    }
    root = candidate.require_root("sketching mismatches")
    differing = _sketch_where(root, candidate, ref_tensors)
    return _sketch_where(root, differing, _vectors_to_weigh(reference, candidate), same=True)


def _vectors_to_weigh(reference: Checkpoint, candidate: Checkpoint) -> dict[str, TensorFingerprint]:
    """The reference's unsketched vectors, when no matrix matches bit for bit: whether the candidate's copy
    of one is a trained norm (derivation shown) or one value repeated (no evidence) is then what the verdict
    weighs, so each is read again (vectors are small); a matching matrix settles it without them."""
    matrices = {(t.name, t.blake3, t.dtype, t.shape) for f in reference.files for t in f.tensors if len(t.shape) >= 2}
    if any((t.name, t.blake3, t.dtype, t.shape) in matrices for f in candidate.files for t in f.tensors):
        return {}
    return {t.name: t for f in reference.files for t in f.tensors if t.sketch is None and len(t.shape) < 2}


def sketch_differences(a: Checkpoint, b: Checkpoint) -> tuple[Checkpoint, Checkpoint]:
    """Two checkpoints on disk, each with a sketch on the float tensors that differ from the other's of
    the same name and shape: what `diff` measures drift with, reading only those tensors again (each from
    its checkpoint's root)."""
    root_a, root_b = a.require_root("sketching differences"), b.require_root("sketching differences")
    by_name_b = {t.name: t for f in b.files for t in f.tensors}
    wanted_a = {t.name: by_name_b[t.name] for f in a.files for t in f.tensors if t.name in by_name_b}
    sketched_a = _sketch_where(root_a, a, wanted_a)
    by_name_a = {t.name: t for f in sketched_a.files for t in f.tensors if t.sketch is not None}
    return sketched_a, _sketch_where(root_b, b, by_name_a)


def _sketch_where(
    root: Path, checkpoint: Checkpoint, others: dict[str, TensorFingerprint], *, same: bool = False
) -> Checkpoint:
    """Sketch the intact float tensors of `checkpoint` that differ from the same-named one in `others` (with
    `same`, those bit-identical to it instead: a vector's sketch says whether it is one value repeated, which
    unrelated models share, or trained values, which show derivation)."""
    if not others:
        return checkpoint
    files: list[FileFingerprint] = []
    for f in checkpoint.files:
        wanted = [
            i
            for i, t in enumerate(f.tensors)
            if t.intact
            and t.end > t.start  # a tensor a layout adapter rebuilt has no bytes to re-read: it was sketched then
            and t.sketch is None  # sketched once, however many references ask
            and not t.view
            and t.dtype in FLOAT_DTYPES
            and (r := others.get(t.name)) is not None
            and ((r.blake3, r.dtype) == (t.blake3, t.dtype)) is same
            and r.shape == t.shape
        ]
        if not wanted:
            files.append(f)
            continue
        tensors = list(f.tensors)
        with open(root / f.path, "rb", buffering=0) as stream:
            for i in wanted:
                tensors[i] = _sketched(stream.fileno(), tensors[i], others[tensors[i].name].dtype)
        files.append(dataclasses.replace(f, tensors=tuple(tensors)))
    return dataclasses.replace(checkpoint, files=tuple(files))


def _sketched(fd: int, tensor: TensorFingerprint, release: str) -> TensorFingerprint:
    """The tensor's sketch, in one read; with the cast back to the `release` dtype when it may be an upcast
    the sketch's own casts do not cover (from float64, or to float32)."""
    builder = SketchBuilder(tensor.name, tensor.dtype, tensor.shape)
    back = CastBack(tensor.dtype, release) if needs_cast_back(release, tensor.dtype) else None
    offset = tensor.start
    while offset < tensor.end:
        aligned = offset - offset % mmap.ALLOCATIONGRANULARITY
        length = min(WINDOW, tensor.end - aligned)
        with mmap.mmap(fd, length, access=mmap.ACCESS_READ, offset=aligned) as window:
            view = memoryview(window)
            try:
                builder.update(view[offset - aligned : length])
                if back is not None:
                    back.update(view[offset - aligned : length])
            finally:
                view.release()
        offset = aligned + length
    sketch = builder.finish()
    return tensor._replace(sketch=sketch if back is None else back.added_to(sketch))
