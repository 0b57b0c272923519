"""A checkpoint's object tree once unpickled: its leaves by dotted path, and a bounded text for any value."""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from provenance._formats.pickle_errors import UnreadablePickle

MAX_NODES = 1 << 20  # nodes of an object tree visited, memo-shared subtrees counted each time they are reached
MAX_NAME_CHARS = 64 << 20  # characters of all dotted paths of an object tree together
MAX_TREE_DEPTH = 64  # state dicts nest a few levels; a deeper or self-referential tree is hostile


def describe(value: Any, limit: int = 80) -> str:
    """A short text for any value a pickle can build, in bounded time and never raising (huge integers,
    deep nesting and long strings included): what reports and errors say of it."""
    text = _describe(value, 3, limit)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(value: Any, depth: int, limit: int) -> str:
    if value is None or type(value) in (bool, float, complex):
        return repr(value)
    if type(value) is int:
        return str(value) if value.bit_length() <= 256 else f"<int of {value.bit_length():,} bits>"
    if type(value) is str:
        return repr(value[: limit + 1])
    if type(value) in (bytes, bytearray):
        return repr(value[: limit + 1])
    if type(value) in (tuple, list, set, frozenset, dict, OrderedDict):
        if depth == 0:
            return f"<{type(value).__name__} of {len(value):,}>"
        items = value.items() if isinstance(value, dict) else value
        parts = []
        for item in itertools.islice(items, 8):
            if isinstance(value, dict):
                parts.append(f"{_describe(item[0], depth - 1, limit)}: {_describe(item[1], depth - 1, limit)}")
            else:
                parts.append(_describe(item, depth - 1, limit))
        more = ", ..." if len(value) > 8 else ""
        inner = ", ".join(parts) + more
        if type(value) is tuple:
            return f"({inner},)" if len(value) == 1 else f"({inner})"
        if type(value) is list:
            return f"[{inner}]"
        if type(value) in (dict, OrderedDict):
            return f"{{{inner}}}" if type(value) is dict else f"OrderedDict({{{inner}}})"
        return f"{type(value).__name__}({{{inner}}})" if value else f"{type(value).__name__}()"
    return f"<{type(value).__name__}>"


def _name_part(key: Any) -> str:
    return key if type(key) is str else describe(key)


def walk_tensors(tree: Any) -> Iterator[tuple[str, Any]]:
    """Every leaf of a checkpoint's object tree by dotted path (list items by index), tensors and not."""
    for name, _, leaf in walk_paths(tree):
        yield name, leaf


def walk_paths(tree: Any) -> Iterator[tuple[str, tuple[str | int, ...], Any]]:
    """Every leaf by dotted path and by the keys that lead to it: `{"model": {"a.b": t}}` and `{"model.a.b": t}`
    share a dotted name, but torch.load returns a nested dict for one and the name a loader looks up for the other.

    Bounded whatever the pickle shares through its memo: a subtree reached twice is walked twice, so the
    nodes visited and the characters of the paths made are counted, and a tree over either bound refused.
    """
    budget = [MAX_NODES, MAX_NAME_CHARS]
    yield from _walk(tree, "", (), 0, budget)


def _walk(
    tree: Any, prefix: str, parts: tuple[str | int, ...], depth: int, budget: list[int]
) -> Iterator[tuple[str, tuple[str | int, ...], Any]]:
    budget[0] -= 1
    budget[1] -= len(prefix)
    if budget[0] < 0 or budget[1] < 0:
        raise UnreadablePickle(
            f"the object tree is larger than {MAX_NODES:,} nodes or {MAX_NAME_CHARS:,} characters of names "
            "(subtrees shared through the pickle's memo count each time they are reached)"
        )
    if depth > MAX_TREE_DEPTH:
        raise UnreadablePickle(f"the object tree nests deeper than {MAX_TREE_DEPTH} levels or refers to itself")
    if isinstance(tree, dict):
        for key, value in tree.items():
            part = _name_part(key)
            yield from _walk(value, f"{prefix}.{part}" if prefix else part, (*parts, part), depth + 1, budget)
    elif type(tree) in (list, tuple):
        for index, value in enumerate(tree):
            part = str(index)
            yield from _walk(value, f"{prefix}.{part}" if prefix else part, (*parts, index), depth + 1, budget)
    else:
        yield prefix, parts, tree
