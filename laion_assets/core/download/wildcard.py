"""robots.txt / TDMRep path patterns matched in linear time, without regular expressions.

A pattern is a prefix match where `*` stands for any run of characters and a trailing `$` anchors
the end (RFC 9309 2.2.3). Compiling it to a regex (`.*` per `*`) backtracks: a `Disallow` of a dozen
`*a` pieces against a long path ran for minutes inside `re` (which holds the GIL, so no timeout could
fire). Here the pattern is split at `*` into literal pieces and each piece is found with `str.find`
after the previous one: taking the leftmost occurrence is always safe for `*`-only patterns, so no
choice is ever revisited and one match costs O(len(path) + len(pattern)).
"""

from __future__ import annotations


class WildcardPattern:
    """`match(path)`: does the pattern match a prefix of `path` (all of it with a trailing `$`)?"""

    __slots__ = ("pattern", "head", "middle", "tail", "anchored", "starred")

    def __init__(self, pattern: str):
        self.pattern = pattern
        self.anchored = pattern.endswith("$")
        body = pattern[:-1] if self.anchored else pattern
        pieces = body.split("*")
        self.starred = len(pieces) > 1
        self.head = pieces[0]  # must start the path
        self.tail = pieces[-1] if self.starred else ""  # with `$`: must end the path
        self.middle = [p for p in (pieces[1:-1] if self.starred else []) if p]
        if self.starred and not self.anchored and self.tail:
            self.middle.append(self.tail)  # unanchored: the last piece is just one more piece
            self.tail = ""

    def match(self, path: str) -> bool:
        if not path.startswith(self.head):
            return False
        if not self.starred:
            return not self.anchored or len(path) == len(self.head)
        pos = len(self.head)
        for piece in self.middle:
            found = path.find(piece, pos)
            if found < 0:
                return False
            pos = found + len(piece)
        if self.anchored:  # `*tail$`: the tail must end the path and not overlap what matched before
            return len(path) - len(self.tail) >= pos and path.endswith(self.tail)
        return True

    def __repr__(self) -> str:
        return f"WildcardPattern({self.pattern!r})"
