"""Python column lists -> an Arrow table without `pa.array`.

Why: `pa.array` (and `pa.table` of lists, which calls it) asks pyarrow's pandas shim whether its input
is a pandas object, and the shim imports pandas to find out: ~0.3 s CPU and ~50 MB in every fresh
extraction process, for a library extraction never uses (issue 22's start-up). Strings go through
buffers built here (one UTF-8 encode of the joined column, offsets from the lengths: ~4x faster
than pyarrow's `StringBuilder`, which was ~10 % of a WAT extraction's CPU, issue 22), with
`StringBuilder` kept for what that fast path does not take (a value that does not encode, such as a
lone surrogate, or more than 2 GiB of text); int64 / float32 / bool columns are numpy buffers handed
to `Array.from_buffers`, with a validity bitmap only when a value is None. Any other type falls back
to `pa.array`. Tested equal to `pa.table(columns, schema=...)`.
"""

from __future__ import annotations

import operator
from itertools import repeat

import numpy as np
import pyarrow as pa
from pyarrow.lib import StringBuilder

_NUMERIC = {pa.int64(): np.int64, pa.float32(): np.float32, pa.float64(): np.float64, pa.int32(): np.int32}


def _bitmap(flags: np.ndarray) -> pa.Buffer:
    return pa.py_buffer(np.packbits(flags, bitorder="little"))


def _validity(values: list, fill=0) -> tuple[pa.Buffer | None, list]:
    """(validity bitmap or None when no value is None, the values with None replaced by `fill`)."""
    if None not in values:
        return None, values
    n = len(values)
    if values.count(None) == n:
        return _bitmap(np.zeros(n, dtype=bool)), [fill] * n
    valid = np.fromiter(map(operator.is_not, values, repeat(None)), dtype=bool, count=n)
    return _bitmap(valid), [fill if v is None else v for v in values]


_MAX_STRING_DATA = (1 << 31) - 1  # int32 offsets


def _string_column(values: list) -> pa.Array | None:
    """A `pa.string()` array from buffers, None when the fast path does not apply (see module doc)."""
    n = len(values)
    if values.count(None) == n:  # e.g. optout_reasons, main_title: every value null
        return pa.Array.from_buffers(pa.string(), n, [_bitmap(np.zeros(n, dtype=bool)),
                                                      pa.py_buffer(np.zeros(n + 1, dtype=np.int32)), pa.py_buffer(b"")])
    validity, filled = _validity(values, "")
    joined = "".join(filled)
    try:
        data = joined.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: StringBuilder decides (it raises, as pa.array does)
        return None
    if len(data) > _MAX_STRING_DATA:
        return None
    offsets = np.zeros(n + 1, dtype=np.int32)
    if len(data) == len(joined):  # ASCII: character counts are byte counts
        lengths = np.fromiter(map(len, filled), dtype=np.int32, count=n)
    else:
        lengths = np.fromiter(map(len, map(str.encode, filled)), dtype=np.int32, count=n)
    np.cumsum(lengths, out=offsets[1:])
    return pa.Array.from_buffers(pa.string(), n, [validity, pa.py_buffer(offsets), pa.py_buffer(data)])


class Runs(list):
    """A column given as (value, count) runs, e.g. the page-level columns (one value per page's rows)."""


def _runs_string_column(runs: Runs) -> pa.Array | None:
    """`_string_column` of the expanded runs, built from each distinct run once; None: not taken."""
    values = [v for v, _ in runs]
    counts = np.fromiter((k for _, k in runs), dtype=np.int64, count=len(runs))
    n = int(counts.sum())
    if values.count(None) == len(values):
        return pa.Array.from_buffers(pa.string(), n, [_bitmap(np.zeros(n, dtype=bool)),
                                                      pa.py_buffer(np.zeros(n + 1, dtype=np.int32)), pa.py_buffer(b"")])
    try:
        encoded = [b"" if v is None else v.encode("utf-8") for v in values]
    except UnicodeEncodeError:
        return None
    lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    if int((lengths * counts).sum()) > _MAX_STRING_DATA:
        return None
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(np.repeat(lengths, counts), out=offsets[1:])
    data = b"".join([e * k for e, k in zip(encoded, counts.tolist())])
    validity = None
    if None in values:
        validity = _bitmap(np.repeat(np.fromiter(map(operator.is_not, values, repeat(None)), dtype=bool,
                                                 count=len(values)), counts))
    return pa.Array.from_buffers(pa.string(), n, [validity, pa.py_buffer(offsets), pa.py_buffer(data)])


def _expand(runs: Runs) -> list:
    out: list = []
    for v, k in runs:
        out += [v] * k
    return out


def keys(n: int) -> pa.Array:
    """`column([f"{i:09d}" for i in range(n)], pa.string())`, the digits computed by numpy."""
    if n >= 10**9:
        return column([f"{i:09d}" for i in range(n)], pa.string())
    digits = (np.arange(n, dtype=np.int64)[:, None] // 10 ** np.arange(8, -1, -1, dtype=np.int64)) % 10
    data = (digits + 48).astype(np.uint8).tobytes()
    offsets = np.arange(0, 9 * (n + 1), 9, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def column(values: list, typ: pa.DataType) -> pa.Array:
    """One Arrow array of type `typ` from a list of Python values (None = null)."""
    if isinstance(values, Runs):
        arr = _runs_string_column(values) if typ == pa.string() and values else None
        if arr is not None:
            return arr
        values = _expand(values)
    n = len(values)
    if typ == pa.string():
        arr = _string_column(values) if n else None
        if arr is not None:
            return arr
        b = StringBuilder()
        b.append_values(values)
        return b.finish()
    if typ in _NUMERIC:
        validity, filled = _validity(values)
        data = np.asarray(filled, dtype=_NUMERIC[typ]) if n else np.zeros(0, dtype=_NUMERIC[typ])
        return pa.Array.from_buffers(typ, n, [validity, pa.py_buffer(data)])
    if typ == pa.bool_():
        validity, filled = _validity(values)
        data = np.fromiter(map(bool, filled), dtype=bool, count=n)
        return pa.Array.from_buffers(typ, n, [validity, _bitmap(data)])
    return pa.array(values, typ)


def table(columns: dict[str, list | pa.Array], schema: pa.Schema) -> pa.Table:
    """`pa.table(columns, schema=schema)` for columns given as lists (or ready Arrow arrays)."""
    arrays = [c if isinstance(c := columns[f.name], pa.Array) else column(c, f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)
