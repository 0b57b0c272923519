"""Text that came from the files under inspection, made safe to print."""

from __future__ import annotations


def count(n: int, word: str) -> str:
    """A counted noun: "1 file", "2 files"."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def printable(text: str) -> str:
    """Show control characters (terminal escapes in a tensor name, say) instead of letting them act."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
