"""Python column lists -> an Arrow table without `pa.array`.

Why: `pa.array` (and `pa.table` of lists, which calls it) asks pyarrow's pandas shim whether its input
is a pandas object, and the shim imports pandas to find out: ~0.3 s CPU and ~50 MB in every fresh
extraction process, for a library extraction never uses (issue 22's start-up). Strings go through
pyarrow's own `StringBuilder` (as fast as `pa.array`, no shim); int64 / float32 / bool columns are
numpy buffers handed to `Array.from_buffers`, with a validity bitmap only when a value is None. Any
other type falls back to `pa.array`. Tested equal to `pa.table(columns, schema=...)`.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from pyarrow.lib import StringBuilder

_NUMERIC = {pa.int64(): np.int64, pa.float32(): np.float32, pa.float64(): np.float64, pa.int32(): np.int32}


def _bitmap(flags: np.ndarray) -> pa.Buffer:
    return pa.py_buffer(np.packbits(flags, bitorder="little"))


def _validity(values: list) -> tuple[pa.Buffer | None, list]:
    """(validity bitmap or None when no value is None, the values with None replaced by 0)."""
    if None not in values:
        return None, values
    valid = np.fromiter((v is not None for v in values), dtype=bool, count=len(values))
    return _bitmap(valid), [0 if v is None else v for v in values]


def column(values: list, typ: pa.DataType) -> pa.Array:
    """One Arrow array of type `typ` from a list of Python values (None = null)."""
    n = len(values)
    if typ == pa.string():
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
