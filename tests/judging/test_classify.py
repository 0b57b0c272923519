"""How one tensor that is not bit-identical relates to the release's: a cast proven by a digest (the
release's cast digests, or the candidate cast back to the release's dtype), a change, or what the evidence
at hand cannot tell. Records made by the real sketch builder from real values."""

from __future__ import annotations

import ml_dtypes
import numpy as np
from blake3 import blake3

from manifests.records import TensorFingerprint
from provenance._hashing.castback import CastBack, needs_cast_back
from provenance._hashing.sketch import SketchBuilder
from provenance._judging.classify import classify
from provenance.report import TensorStatus

CODES = {np.dtype(np.float16): "F16", np.dtype(np.float32): "F32", np.dtype(np.float64): "F64"}
CODES[np.dtype(ml_dtypes.bfloat16)] = "BF16"


def record(values: np.ndarray, *, sketch: bool = False, release: str | None = None) -> TensorFingerprint:
    """A tensor's fingerprint as the engine records it; `sketch` adds what derive.py takes of a candidate
    (with the cast back to the `release` dtype where the sketch lacks it)."""
    code = CODES[values.dtype]
    data = np.ascontiguousarray(values).reshape(-1).view(np.uint8).data
    tensor = TensorFingerprint("w", code, tuple(values.shape), 0, len(data), blake3(data).hexdigest())
    if not sketch:
        return tensor
    builder = SketchBuilder("w", code, tensor.shape)
    builder.update(data)
    made = builder.finish()
    if release is not None and needs_cast_back(release, code):
        back = CastBack(code, release)
        back.update(data)
        made = back.added_to(made)
    return tensor._replace(sketch=made)


RELEASE = (np.random.default_rng(0).standard_normal((16, 8)) * 0.02).astype(np.float16)


def test_an_upcast_cast_back_is_proven_without_the_releases_sketch() -> None:
    status, detail, figures = classify(record(RELEASE), record(RELEASE.astype(np.float32), sketch=True))[:3]
    assert (status, detail, figures) == (
        TensorStatus.CAST,
        "the release's F16 values in F32 (they round back exactly)",
        None,
    )


def test_a_float64_upcast_is_cast_back_too() -> None:
    for source in (RELEASE, RELEASE.astype(np.float32) * 3):
        code = CODES[source.dtype]
        candidate = record(source.astype(np.float64), sketch=True, release=code)
        status, detail = classify(record(source), candidate)[:2]
        assert (status, detail) == (TensorStatus.CAST, f"the release's {code} values in F64 (they round back exactly)")


def test_values_that_round_to_the_releases_but_are_not_it_widened_are_a_proven_change() -> None:
    nudged = RELEASE.astype(np.float32) * (1 + 2.0**-14)  # within float16's rounding: casts back to the release
    result = classify(record(RELEASE), record(nudged, sketch=True))
    assert (result[0], result[-1]) == (TensorStatus.MODIFIED, True)
    assert "within F16's rounding" in result[1]


def test_another_dtype_a_plain_reference_cannot_judge_is_marked_so() -> None:
    lossy = RELEASE.astype(np.float32).astype(ml_dtypes.bfloat16)  # not a value of float16's: a lossy cast
    result = classify(record(RELEASE), record(lossy, sketch=True))
    assert (result[0], result[-1]) == (TensorStatus.MODIFIED, False)  # neither a cast nor a change: a doubt
    assert "a sketched manifest would decide" in result[1]


def test_a_widened_fine_tune_against_a_plain_reference_is_marked_undecidable() -> None:
    tuned = RELEASE.astype(np.float32) * 1.01
    result = classify(record(RELEASE), record(tuned, sketch=True))
    assert (result[0], result[-1]) == (TensorStatus.MODIFIED, False)


def test_the_same_dtype_changed_without_samples_is_a_change_without_figures() -> None:
    """Whether it derives is the verdict's to say (compare.py): here it is only not the release's tensor."""
    other = (np.random.default_rng(1).standard_normal((16, 8)) * 0.02).astype(np.float16)
    assert classify(record(RELEASE), record(other)) == (TensorStatus.MODIFIED, "values differ", None)


def test_with_sketches_the_samples_tell_a_fine_tune_from_other_weights() -> None:
    other = (np.random.default_rng(1).standard_normal((16, 8)) * 0.02).astype(np.float16)
    tuned = (RELEASE.astype(np.float32) * 1.05).astype(np.float16)
    _, _, unrelated = classify(record(RELEASE, sketch=True), record(other, sketch=True))[:3]
    _, _, derived = classify(record(RELEASE, sketch=True), record(tuned, sketch=True))[:3]
    assert unrelated is not None and derived is not None
    assert abs(unrelated[1]) < 0.5 <= derived[1]


def test_numbers_turned_nan_are_a_change_even_in_another_dtype() -> None:
    broken = RELEASE.astype(np.float32)
    broken[:8] = np.nan  # half the elements: some of the samples
    status, detail = classify(record(RELEASE, sketch=True), record(broken, sketch=True))[:2]
    assert status is TensorStatus.MODIFIED
    assert detail.endswith("sampled values are NaN or Inf where the release's are numbers")


def test_another_shape_is_a_change() -> None:
    assert classify(record(RELEASE), record(RELEASE[:8])) == (
        TensorStatus.MODIFIED,
        "shape [8, 8], expected [16, 8]",
        None,
    )
