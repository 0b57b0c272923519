"""A pickle read opcode by opcode, never run: the checks before it is unpickled, and the globals it names.

The prescan admits only the opcodes torch.load(weights_only=True) runs, memo indexes a real pickle uses,
tuples nested no deeper than a hash can follow and no more objects than the memory bound allows;
`list_globals` names every global a pickle would import, for people who audit.
"""

from __future__ import annotations

import io
import pickletools
from typing import Any

from provenance._formats.pickle_errors import DisallowedGlobal, UnreadablePickle
from provenance._formats.stand_ins import ALLOWED

OBJECT_CAP = 512 << 20  # bytes of Python objects a pickle may build (estimated before it is run)
MAX_OPCODES = 10 << 20  # opcodes read before a pickle runs: about 40 per tensor, so 200,000 tensors (MAX_TENSORS) fit
# The opcodes torch.load(weights_only=True) executes (torch/_weights_only_unpickler.py); any other is refused.
TORCH_OPCODES = frozenset(
    {
        "PROTO", "STOP", "GLOBAL", "NEWOBJ", "REDUCE", "BUILD", "APPEND", "APPENDS", "SETITEM", "SETITEMS",
        "MARK", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "NONE", "NEWFALSE", "NEWTRUE", "EMPTY_TUPLE",
        "EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET", "BININT", "BININT1", "BININT2", "BINFLOAT", "BINUNICODE",
        "SHORT_BINSTRING", "BINPERSID", "BINGET", "LONG_BINGET", "BINPUT", "LONG_BINPUT", "LONG1",
    }
)  # fmt: skip
# Upper bounds of the bytes of objects one opcode can make (sizes in CPython 3.12), a slot to hold it included.
_OBJECT_BYTES = {"EMPTY_SET": 280, "EMPTY_DICT": 280, "EMPTY_LIST": 120, "REDUCE": 640, "NEWOBJ": 640, "LONG1": 400}
_SMALL_BYTES = {"BINPUT": 16, "LONG_BINPUT": 16, "MARK": 16, "PROTO": 0, "STOP": 0, "BUILD": 0}
_SMALL_BYTES.update(
    dict.fromkeys(("BINGET", "LONG_BINGET", "NONE", "NEWTRUE", "NEWFALSE", "EMPTY_TUPLE", "BININT1"), 32)
)
# ^ objects that already exist (memo entries, singletons, small ints): only the slot that holds them

_MEMO_OPS = frozenset({"BINPUT", "LONG_BINPUT", "BINGET", "LONG_BINGET"})


MAX_TUPLE_DEPTH = 100  # hashing a tuple recurses in C without a limit: a million nested tuples crash CPython
_POPS = {"APPEND": 1, "SETITEM": 2, "BUILD": 1, "BINPERSID": 1, "REDUCE": 2, "NEWOBJ": 2}
_TUPLES = {"TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}
_KEEPS = frozenset({"PROTO", "STOP", "BINPUT", "LONG_BINPUT"})


class _Nesting:
    """How deeply the tuples on the unpickler's stack nest, followed opcode by opcode without running them."""

    def __init__(self) -> None:
        self.stack: list[int] = []
        self.marks: list[int] = []
        self.memo: dict[int, int] = {}

    def _pop(self, count: int) -> int:
        taken = self.stack[max(0, len(self.stack) - count) :] if count else []
        del self.stack[len(self.stack) - len(taken) :]
        return max(taken, default=0)

    def _to_mark(self) -> int:
        return self._pop(len(self.stack) - (self.marks.pop() if self.marks else 0))

    def step(self, name: str, arg: Any) -> int:
        """Follow one opcode; the depth of the tuple it made (0 when it made none)."""
        if name in _KEEPS:
            if name != "STOP" and name != "PROTO":
                self.memo[int(arg or 0)] = self.stack[-1] if self.stack else 0
            return 0
        if name == "MARK":
            self.marks.append(len(self.stack))
            return 0
        if name in ("BINGET", "LONG_BINGET"):
            self.stack.append(self.memo.get(int(arg or 0), 0))
            return 0
        if name in ("APPENDS", "SETITEMS"):
            self._to_mark()
            return 0
        depth = 0
        if name == "TUPLE":
            depth = self._to_mark() + 1
        elif name in _TUPLES:
            depth = self._pop(_TUPLES[name]) + 1
        elif name == "EMPTY_TUPLE":
            depth = 1
        else:
            self._pop(_POPS.get(name, 0))
        self.stack.append(depth)
        return depth


def prescan(stream: io.BytesIO, source: str) -> None:
    """Read the pickle's opcodes before running it: only the ones torch.load(weights_only=True) runs, memo
    indexes a real pickle uses (the C unpickler sizes its memo to the largest index it sees: 9 bytes naming
    2**28 cost gigabytes), tuples nested no deeper than a hash can follow, and no more objects than the
    memory bound allows."""
    start = stream.tell()
    limit = len(stream.getbuffer()) - start
    cost = 0
    refused = ""
    nesting = _Nesting()
    try:
        for count, (opcode, arg, _) in enumerate(pickletools.genops(stream)):
            name = opcode.name
            if count >= MAX_OPCODES:
                raise UnreadablePickle(f"the pickle has over {MAX_OPCODES:,} opcodes, more than any checkpoint")
            if name not in TORCH_OPCODES:
                refused = refused or name
                continue
            if name in _MEMO_OPS and int(arg or 0) > limit:
                raise UnreadablePickle(f"memo index {arg:,} in a pickle of {limit:,} bytes")
            if nesting.step(name, arg) > MAX_TUPLE_DEPTH:
                raise UnreadablePickle(f"the pickle nests tuples deeper than {MAX_TUPLE_DEPTH} levels")
            size = len(arg) * 4 if type(arg) is str else len(arg) if type(arg) is bytes else 0
            cost += _SMALL_BYTES.get(name, _OBJECT_BYTES.get(name, 96)) + size
            if cost > OBJECT_CAP:
                raise UnreadablePickle(f"the pickle would build over {OBJECT_CAP >> 20:,} MiB of objects")
    finally:
        end = stream.tell()
        stream.seek(start)
    if refused:
        named = [g for g in list_globals(stream.getvalue()[start:end]) if tuple(g.rsplit(".", 1)) not in ALLOWED]
        if named and not named[0].startswith("("):
            module, _, attr = named[0].rpartition(".")
            raise DisallowedGlobal(source, module, attr)
        raise UnreadablePickle(f"the pickle uses opcode {refused}, which torch.load(weights_only=True) refuses")


def list_globals(data: bytes) -> list[str]:
    """Every global a pickle would import, read from its opcodes without executing anything.

    STACK_GLOBAL takes its module and name from the stack, which may come from the memo: string values
    are tracked through PUT/GET so that gadgets hidden that way are named too.
    """
    found: list[str] = []
    strings: list[str | None] = []
    memo: dict[int, str | None] = {}
    try:
        for opcode, arg, _ in pickletools.genops(data):
            name = opcode.name
            if name in ("GLOBAL", "INST"):
                module, _, attr = str(arg).partition(" ")
                found.append(f"{module}.{attr}")
                strings.append(None)
            elif name == "STACK_GLOBAL":
                top = strings.pop() if strings else None
                below = strings.pop() if strings else None
                found.append(f"{below or '?'}.{top or '?'}")
                strings.append(None)
            elif name in (
                "SHORT_BINUNICODE",
                "BINUNICODE",
                "BINUNICODE8",
                "UNICODE",
                "SHORT_BINSTRING",
                "BINSTRING",
                "STRING",
            ):
                strings.append(str(arg))
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[int(arg or 0)] = strings[-1] if strings else None
            elif name == "MEMOIZE":
                memo[len(memo)] = strings[-1] if strings else None
            elif name in ("PROTO", "FRAME", "STOP"):
                continue
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                strings.append(memo.get(int(arg or 0)))
            else:
                strings.append(None)
    except (ValueError, EOFError, KeyError, IndexError) as exc:
        found.append(f"(the pickle is damaged after this point: {exc})")
    return found
