"""Release file names: which of them collide under case folding or Unicode normalization."""

from __future__ import annotations


def test_colliding_paths_covers_files_folders_case_and_unicode_forms() -> None:
    from manifests.names import colliding_paths

    assert colliding_paths(["config.json", "model.safetensors", "sub/config.json"]) == []
    assert colliding_paths(["config.json", "CONFIG.JSON"]) == [("CONFIG.JSON", "config.json")]
    assert colliding_paths(["Model", "model/x.bin"]) == [("Model", "model/x.bin")]
    assert colliding_paths(["a/b", "A/c"]) == []  # two folders merge, no file is replaced
    assert colliding_paths(["stra\u00dfe", "STRASSE"]) == [("STRASSE", "stra\u00dfe")]
    assert colliding_paths(["\ufb01le", "file"]) == [("file", "\ufb01le")]
