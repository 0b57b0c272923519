"""`provenance demo`: the main job end to end on the bundled sample release, as a library user would run it.

The sample is built, fingerprinted into a manifest, copied, damaged the way downloads are damaged (a bit
flipped, a shard lost) and the copy verified. The CLI only prints what each step did.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from manifests.model import build_manifest, write_manifest
from manifests.records import Checkpoint
from provenance._checks.fingerprint import fingerprint
from provenance._checks.verify import verify
from provenance._sample import build_sample_release, flip_bit
from provenance.errors import UnreadableInput
from provenance.report import Report

RELEASE_NAME = "sample-release"
FLIPPED_SHARD = "model-00002-of-00003.safetensors"
FLIPPED_TENSOR = "model.layers.2.mlp.up_proj.weight"
DELETED_SHARD = "model-00003-of-00003.safetensors"


@dataclass(frozen=True, slots=True)
class DemoRun:
    """What the demo built, what it did to the copy, and what verifying the copy found."""

    release: Path  # the sample release: 3 safetensors shards, their index, a config and a tokenizer
    manifest: Path  # the release's unsigned manifest
    checkpoint: Checkpoint  # the release as fingerprinted
    download: Path  # the damaged copy
    damage: tuple[str, ...]  # what was done to the copy, one phrase each
    report: Report  # `verify(download, manifest)`


def demo(folder: Path) -> DemoRun:
    """Build the sample release in `folder` (empty or new), fingerprint it into a manifest, damage a copy of
    it (one bit flipped in one tensor, the last shard deleted) and verify the copy against the manifest.

    The report's verdict is `modified` (exit code 1): one tensor changed, the deleted shard's tensors
    missing. Raises UnreadableInput (exit 2) when `folder` is not empty or cannot be made a folder.
    """
    try:
        if folder.exists() and any(folder.iterdir()):
            raise UnreadableInput(f"{folder} is not empty; give an empty or new folder to --dir")
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file in its place or on its path, no permission: an input, not a crash
        raise UnreadableInput(f"cannot build the demo in {folder}: {exc.strerror or exc}") from exc
    release = build_sample_release(folder / "release")
    manifest = folder / "release.manifest.json"
    checkpoint = fingerprint(release)
    write_manifest(manifest, build_manifest(checkpoint, RELEASE_NAME))

    download = folder / "download"
    shutil.copytree(release, download)
    flip_bit(download / FLIPPED_SHARD, FLIPPED_TENSOR, byte=100, bit=3)
    (download / DELETED_SHARD).unlink()
    damage = (f"one bit flipped in {FLIPPED_TENSOR}", "shard 3 of 3 deleted")
    return DemoRun(release, manifest, checkpoint, download, damage, verify(download, manifest))
