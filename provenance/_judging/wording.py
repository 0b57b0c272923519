"""How reasons name things: a few names then a count, and counted nouns, the same in every sentence."""

from __future__ import annotations

NAMES_SHOWN = 3


def names(items: list[str]) -> str:
    """The first few items, then how many more: a reason stays one readable line."""
    shown = ", ".join(items[:NAMES_SHOWN])
    return shown + (f" and {len(items) - NAMES_SHOWN} more" if len(items) > NAMES_SHOWN else "")


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def are(count: int) -> str:
    """The verb after a counted noun: "1 tensor is", "2 tensors are"."""
    return "is" if count == 1 else "are"
