"""Module-name patterns matched in time linear in the name (no backtracking).

``target_modules`` given as a string is a regular expression that must match a whole module
name.  Python's :mod:`re` backtracks: the seven characters ``(.|.)*!`` take time doubling
with each character of the name they fail on, so a config from a downloaded adapter could
hang injection.  Here a pattern is parsed with Python's own regex parser (same syntax, same
meaning) and run as a Thompson automaton whose sets of states are cached (a lazy DFA, as
RE2 does): each character of a name costs one cached step, whatever the pattern.

Supported: literals, ``.``, classes (``[a-z_]``, ``\\d``, ``\\w``, ``\\s`` and their
negations), groups, alternation, every repetition (``*``, ``+``, ``?``, ``{m,n}``, lazy or
not: a whole-name match does not depend on greediness), anchors ``^ $ \\A \\Z \\b \\B``,
the flags ``(?s) (?m) (?x)``.  Refused with a ValueError naming the pattern: backreferences,
lookarounds, conditionals, atomic groups and possessive repeats (none has a linear-time
match), case-insensitive and ASCII flags, and patterns whose automaton exceeds
:data:`MAX_STATES` (counted repeats are unrolled); a match that takes more than
:data:`MAX_WORK` uncached steps is stopped with a ValueError.
"""
from __future__ import annotations

import functools
import re
from typing import Callable

try:  # Python 3.11 on: the parser of the re module
    import re._constants as C
    import re._parser as parser
except ImportError:  # Python 3.10
    import sre_constants as C  # type: ignore[no-redef]
    import sre_parse as parser  # type: ignore[no-redef]

__all__ = ["MAX_STATES", "ModulePattern", "compile_pattern", "fullmatch"]

#: Most instructions of one pattern's automaton (``a{1000}`` alone is 1000).
MAX_STATES = 1_000
#: Most automaton work (states visited outside the cache) one pattern may take over all its
#: matches, about a second: beyond it the match is refused (a pattern whose automaton keeps
#: meeting new sets of states on every name).
MAX_WORK = 3_000_000
#: Cached automaton steps kept per pattern before the cache is cleared.
_MAX_CACHE = 50_000

_CATEGORIES: dict = {
    C.CATEGORY_DIGIT: str.isdecimal,
    C.CATEGORY_SPACE: str.isspace,
    C.CATEGORY_WORD: lambda ch: ch.isalnum() or ch == "_",
}
_CATEGORIES.update({
    C.CATEGORY_NOT_DIGIT: lambda ch: not ch.isdecimal(),
    C.CATEGORY_NOT_SPACE: lambda ch: not ch.isspace(),
    C.CATEGORY_NOT_WORD: lambda ch: not (ch.isalnum() or ch == "_"),
})
_REFUSED_FLAGS = {re.IGNORECASE: "case-insensitive (?i)", re.ASCII: "ASCII (?a)",
                  re.LOCALE: "locale (?L)"}


class _Refused(ValueError):
    pass


def _is_word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _item_test(op, av) -> Callable[[str], bool]:
    if op is C.LITERAL:
        c = chr(av)
        return lambda ch: ch == c
    if op is C.NOT_LITERAL:
        c = chr(av)
        return lambda ch: ch != c
    if op is C.RANGE:
        lo, hi = av
        return lambda ch: lo <= ord(ch) <= hi
    if op is C.CATEGORY and av in _CATEGORIES:
        return _CATEGORIES[av]
    raise _Refused(f"the class item {op} {av}")


def _class_test(items) -> Callable[[str], bool]:
    negate = bool(items) and items[0][0] is C.NEGATE
    tests = [_item_test(op, av) for op, av in (items[1:] if negate else items)]
    return lambda ch: any(t(ch) for t in tests) != negate


class _Compiler:
    """Thompson construction: a list of instructions ``("char", test)``, ``("split", a, b)``,
    ``("jmp", a)``, ``("assert", at)``, ``("match",)``."""

    def __init__(self, flags: int):
        self.prog: list[list] = []
        self.dotall = bool(flags & re.DOTALL)
        self.multiline = bool(flags & re.MULTILINE)

    def add(self, *ins) -> int:
        if len(self.prog) >= MAX_STATES:
            raise _Refused(f"more than {MAX_STATES} automaton states (unrolled repeats)")
        self.prog.append(list(ins))
        return len(self.prog) - 1

    def flags(self, add: int, remove: int = 0) -> None:
        for flag, what in _REFUSED_FLAGS.items():
            if add & flag:
                raise _Refused(f"the {what} flag")
        if add & re.DOTALL:
            self.dotall = True
        if remove & re.DOTALL:
            self.dotall = False

    def seq(self, nodes) -> None:
        for op, av in nodes:
            self.node(op, av)

    def node(self, op, av) -> None:
        if op in (C.LITERAL, C.NOT_LITERAL):
            self.add("char", _item_test(op, av))
        elif op is C.ANY:
            self.add("char", (lambda ch: True) if self.dotall else (lambda ch: ch != "\n"))
        elif op is C.IN:
            self.add("char", _class_test(av))
        elif op is C.SUBPATTERN:
            _, add, remove, body = av
            saved = self.dotall
            self.flags(add, remove)
            self.seq(body)
            self.dotall = saved
        elif op is C.BRANCH:
            splits, ends = [], []
            alternatives = av[1]
            for i, alt in enumerate(alternatives):
                if i < len(alternatives) - 1:
                    splits.append(self.add("split", len(self.prog) + 1, None))
                self.seq(alt)
                if i < len(alternatives) - 1:
                    ends.append(self.add("jmp", None))
                    self.prog[splits[-1]][2] = len(self.prog)
            for j in ends:
                self.prog[j][1] = len(self.prog)
        elif op in (C.MAX_REPEAT, C.MIN_REPEAT):
            lo, hi, body = av
            for _ in range(lo):
                self.seq(body)
            if hi == C.MAXREPEAT:
                loop = self.add("split", len(self.prog) + 1, None)
                self.seq(body)
                self.add("jmp", loop)
                self.prog[loop][2] = len(self.prog)
            else:
                outs = []
                for _ in range(hi - lo):
                    outs.append(self.add("split", len(self.prog) + 1, None))
                    self.seq(body)
                for j in outs:
                    self.prog[j][2] = len(self.prog)
        elif op is C.AT:
            lines = {C.AT_BEGINNING: C.AT_BEGINNING_LINE, C.AT_END: C.AT_END_LINE}
            self.add("assert", lines.get(av, av) if self.multiline else av)
        else:
            names = {C.GROUPREF: "a backreference", C.ASSERT: "a lookaround",
                     C.ASSERT_NOT: "a negative lookaround", C.GROUPREF_EXISTS: "a conditional",
                     getattr(C, "ATOMIC_GROUP", None): "an atomic group",  # 3.11 on
                     getattr(C, "POSSESSIVE_REPEAT", None): "a possessive repeat"}
            raise _Refused(names.get(op, f"the construct {op}"))


def _holds(at, name: str, i: int) -> bool:
    end = len(name)
    if at in (C.AT_BEGINNING, C.AT_BEGINNING_STRING):
        return i == 0
    if at is C.AT_BEGINNING_LINE:
        return i == 0 or name[i - 1] == "\n"
    if at is C.AT_END:
        return i == end or (i == end - 1 and name[i] == "\n")
    if at is C.AT_END_STRING:
        return i == end
    if at is C.AT_END_LINE:
        return i == end or name[i] == "\n"
    before = i > 0 and _is_word(name[i - 1])
    after = i < end and _is_word(name[i])
    if at is C.AT_BOUNDARY:
        return before != after
    if at is C.AT_NON_BOUNDARY:
        return before == after
    raise _Refused(f"the anchor {at}")


class ModulePattern:
    """A compiled ``target_modules`` pattern; :meth:`fullmatch` as ``re.fullmatch`` would
    answer, in time linear in the name."""

    def __init__(self, pattern: str):
        self.pattern = pattern
        try:
            tree = parser.parse(pattern)
        except re.error as e:
            raise ValueError(f"target_modules={pattern!r} is not a valid regex: {e}") from None
        try:
            compiler = _Compiler(tree.state.flags)
            compiler.flags(tree.state.flags)
            compiler.seq(tree)
            compiler.add("match")
        except _Refused as e:
            raise ValueError(f"target_modules={pattern!r} uses {e}, which module-name patterns "
                             f"do not support (they are matched in linear time, without "
                             f"backtracking); write it with groups, alternation, classes and "
                             f"repeats only, or give a list of name suffixes") from None
        self.prog = [tuple(ins) for ins in compiler.prog]
        self.anchored = any(ins[0] == "assert" for ins in self.prog)
        self._steps: dict = {}
        self._closures: dict = {}
        self._work = 0

    def _spend(self, work: int) -> None:
        self._work += work
        if self._work > MAX_WORK:
            raise ValueError(f"target_modules={self.pattern!r} is too costly to match against "
                             f"module names (more than {MAX_WORK:,} automaton steps); simplify "
                             f"it or give a list of name suffixes")

    def __repr__(self) -> str:
        return f"ModulePattern({self.pattern!r})"

    def _closure(self, pcs, name: str, i: int) -> frozenset:
        key = (pcs, self._context(name, i)) if self.anchored else pcs
        found = self._closures.get(key)
        if found is not None:
            return found
        out, stack, seen = set(), list(pcs), set()
        while stack:
            pc = stack.pop()
            if pc in seen:
                continue
            seen.add(pc)
            ins = self.prog[pc]
            if ins[0] == "split":
                stack += [ins[2], ins[1]]
            elif ins[0] == "jmp":
                stack.append(ins[1])
            elif ins[0] == "assert":
                if _holds(ins[1], name, i):
                    stack.append(pc + 1)
            else:
                out.add(pc)
        self._spend(len(seen))
        found = frozenset(out)
        if len(self._closures) > _MAX_CACHE:
            self._closures.clear()
        self._closures[key] = found
        return found

    @staticmethod
    def _context(name: str, i: int) -> tuple:
        end = len(name)
        return (i == 0, i == end, i == end - 1, i > 0 and name[i - 1] == "\n",
                i < end and name[i] == "\n", i > 0 and _is_word(name[i - 1]),
                i < end and _is_word(name[i]))

    def fullmatch(self, name: str) -> bool:
        """Whether the pattern matches the whole of ``name``."""
        states = self._closure(frozenset((0,)), name, 0)
        for i, ch in enumerate(name):
            key = (states, ch)
            nxt = self._steps.get(key)
            if nxt is None:
                nxt = frozenset(pc + 1 for pc in states
                                if self.prog[pc][0] == "char" and self.prog[pc][1](ch))
                self._spend(len(states))
                if len(self._steps) > _MAX_CACHE:
                    self._steps.clear()
                self._steps[key] = nxt
            if not nxt:
                return False
            states = self._closure(nxt, name, i + 1)
        return len(self.prog) - 1 in states


@functools.lru_cache(maxsize=64)
def compile_pattern(pattern: str) -> ModulePattern:
    """The :class:`ModulePattern` of ``pattern`` (ValueError naming it if it is refused)."""
    return ModulePattern(pattern)


def fullmatch(pattern: str, name: str) -> bool:
    """``re.fullmatch(pattern, name) is not None``, in time linear in ``name``."""
    return compile_pattern(pattern).fullmatch(name)
