"""Strict reading of filed removal lists: a file is applied whole or not at all.

Python's csv module, left lenient, reads an unclosed quote as a field that runs to the next quote or
to the end of the file, so one stray `"` turns every later entry into one "URL" that matches
nothing, silently. Here any such file is rejected, naming the line.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable


class SourceRejected(ValueError):
    """The whole file is unusable (bad encoding, broken CSV, no header): nothing of it is applied,
    since a half-read file could apply entries the requester never wrote (or miss ones they did)."""


def csv_entries(text: str, delimiter: str) -> Iterable[tuple[int, str | None, str | None, str | None]]:
    """Strict CSV: a quoted field that runs over a line end (an unclosed quote swallowing the lines
    after it) or any CSV syntax error rejects the file, naming the line; a row with the wrong number
    of fields is rejected on its own (value None, see `load_source`)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    previous = 0
    try:
        header = next(reader, None)
        if header is None:
            raise SourceRejected("empty file")
        if reader.line_num != 1:
            raise SourceRejected("line 1: the header runs over several lines (an unclosed quote?)")
        names = [h.strip().lower() for h in header]
        if "value" not in names:
            raise SourceRejected("line 1: CSV needs a header with a 'value' column")
        previous = reader.line_num
        for row in reader:
            line, previous = previous + 1, reader.line_num
            if reader.line_num != line:
                raise SourceRejected(f"line {line}: a quoted field runs over lines {line}-{reader.line_num} "
                                     "(an unclosed quote?)")
            if not row or row == [""]:
                continue
            if len(row) != len(names):
                yield line, WRONG_FIELDS, f"{len(row)} fields, the header has {len(names)}", None
                continue
            fields = dict(zip(names, row))
            yield line, fields.get("kind"), fields.get("value"), fields.get("listed_on")
    except csv.Error as e:
        raise SourceRejected(f"line {previous + 1}: CSV syntax error in the record starting here: {e} "
                             "(an unclosed quote?)") from None


WRONG_FIELDS = "\0wrong-fields"  # marker kind: the row's value is the reason, never an entry
