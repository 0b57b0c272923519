"""Rebuild the bundled LLaMA (v1) reference manifests from the published checksums. Commit what it writes.

    python manifests/registry/build_llama.py PATH/TO/llama-published-checksums.md

Writes llama-1.json (the whole release in the torrent's layout: 7B/, 13B/, 30B/, 65B/, tokenizer.model)
and llama-1-7b.json ... llama-1-65b.json (one size and the tokenizer), each with md5 and sha256 per file.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from manifests.io import dump_json, write_atomic
from manifests.model import Manifest, Release
from manifests.records import Checkpoint, FileFingerprint, is_weights_file, role_of

HERE = Path(__file__).resolve().parent
SOURCES = (
    "md5: Meta's checklist.chk files as reposted publicly (shawwn/llama-dl issue 4; ggerganov/llama.cpp issue 238)",
    "sha256: computed by the community from the distributed files (ggerganov/llama.cpp SHA256SUMS, PR 338)",
)
SIZES = ("7B", "13B", "30B", "65B")
KNOWN_SIZES = {"7B/consolidated.00.pth": 13_476_939_516, "tokenizer.model": 499_723}  # from the same reference


def parse(text: str) -> dict[str, dict[str, str]]:
    """path -> {algorithm: digest} from the reference's fenced blocks, for LLaMA v1 only."""
    digests: dict[str, dict[str, str]] = {}
    section = None
    for line in text.splitlines():
        heading = re.match(r"^## (\w+)", line)
        if heading:
            word = heading.group(1)
            section = word if word in SIZES else ("" if word == "tokenizer" else None)
            continue
        entry = re.match(r"^([0-9a-f]{32}|[0-9a-f]{64})  (\S+)$", line)
        if section is None or not entry:
            continue
        digest, name = entry.groups()
        path = f"{section}/{name}" if section else name
        digests.setdefault(path, {})["md5" if len(digest) == 32 else "sha256"] = digest
    return digests


def manifest(name: str, digests: dict[str, dict[str, str]]) -> Manifest:
    files = tuple(
        FileFingerprint(
            path, KNOWN_SIZES.get(path), role_of(path, is_weights_file(path)), digests=dict(sorted(found.items()))
        )
        for path, found in sorted(digests.items())
    )
    return Manifest(Release(name=name, created="2023-03-02T00:00:00Z", sources=SOURCES), Checkpoint(files))


def main(reference: Path) -> None:
    digests = parse(reference.read_text())
    write_atomic(HERE / "llama-1.json", dump_json(manifest("llama-1", digests).statement()), force=True)
    for size in SIZES:
        subset = {p: d for p, d in digests.items() if p.startswith(f"{size}/") or "/" not in p}
        out = HERE / f"llama-1-{size.lower()}.json"
        write_atomic(out, dump_json(manifest(f"llama-1-{size.lower()}", subset).statement()), force=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
