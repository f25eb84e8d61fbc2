"""py3langid's model, loaded in ~0.05 s instead of ~0.7 s: decompressed once into a per-machine cache.

The wheel ships the model as an LZMA-compressed npz; decompressing it is most of a worker's start-up
CPU. The first process on a machine writes the same arrays as plain `.npy` files (to a temporary
directory renamed into place, so concurrent workers never read a half-written cache) and every later
one loads those (plain reads, ~30 ms). Same arrays, same LanguageIdentifier, so
results are identical (tested). The batch path (`load_tables`) reads only what it uses: the DFA arrays
and a float32 copy of the naive-Bayes table (`ptc32.npy`, 57 MB), both mapped read-only from the page cache,
so a fresh worker neither reads nor converts 28 MB of float16 and the pages are shared between the
workers of a machine. Cache root: $LAION_CACHE_DIR, else $XDG_CACHE_HOME/laion-assets, else
~/.cache/laion-assets; if it cannot be written, the model is read from the wheel as before.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def cache_root() -> Path:
    from laion_assets.settings import machine_cache_dir

    return machine_cache_dir()


def _model_path() -> Path:
    from py3langid.langid import MODEL_DIR, MODEL_FILE

    p = Path(MODEL_FILE)
    return p if p.is_absolute() else Path(MODEL_DIR) / p


def cached_model_dir() -> Path:
    src = _model_path()
    st = src.stat()
    return cache_root() / f"py3langid-v2-{st.st_size}-{int(st.st_mtime)}"  # v2: with ptc32.npy


def _write_cache(target: Path) -> None:
    import numpy as np
    from py3langid.modelio import load_model

    ptc, pc, classes, nextmove, row, output = load_model(_model_path())
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    np.save(tmp / "ptc.npy", np.ascontiguousarray(ptc))
    np.save(tmp / "ptc32.npy", np.ascontiguousarray(ptc, dtype=np.float32))
    np.save(tmp / "pc.npy", np.asarray(pc))
    np.save(tmp / "nextmove.npy", np.frombuffer(nextmove, dtype=f"u{nextmove.itemsize}"))
    np.save(tmp / "row.npy", np.frombuffer(row, dtype=f"u{row.itemsize}"))
    np.save(tmp / "output.npy", np.asarray(output, dtype=np.int64))
    (tmp / "classes.json").write_text(json.dumps(list(classes)))
    try:
        os.replace(tmp, target)  # atomic; another worker may have won the race: then use its copy
    except OSError:
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()


def load_identifier(norm_probs: bool = True):
    """py3langid's LanguageIdentifier with the shipped model, from the cache when possible."""
    import numpy as np
    from py3langid.langid import MODEL_FILE, LanguageIdentifier
    from py3langid.modelio import _to_array

    try:
        d = cached_model_dir()
        if not (d / "classes.json").exists():
            _write_cache(d)
        ptc = np.load(d / "ptc.npy")  # not mmap: a memmap subclass makes every later gather slower
        pc = np.load(d / "pc.npy")
        nextmove = _to_array(np.load(d / "nextmove.npy"))
        row = _to_array(np.load(d / "row.npy"))
        output = np.load(d / "output.npy").tolist()
        classes = json.loads((d / "classes.json").read_text())
    except (OSError, ValueError):
        return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=norm_probs)
    return LanguageIdentifier(ptc, pc, classes, nextmove, output, norm_probs=norm_probs, tk_row=row)


def _alias_pairs(classes: list[str]) -> list[tuple[int, int]]:
    """(first, duplicate) column pairs for labels that appear more than once (py3langid's `_alias_pairs`)."""
    first: dict[str, int] = {}
    pairs = []
    for i, c in enumerate(classes):
        if c in first:
            pairs.append((first[c], i))
        else:
            first[c] = i
    return pairs


def load_tables() -> dict | None:
    """The arrays `language.detect_many` needs, from the cache (written on first use); None when the
    cache cannot be written or read (the caller then derives them from the identifier).

    Keys: nextmove, rowbase (tk_row << 8), output (int64), ptc32 (float32, mmap-backed plain ndarray),
    pc, classes, alias_pairs."""
    import numpy as np

    try:
        d = cached_model_dir()
        if not (d / "classes.json").exists():
            _write_cache(d)
        # A memmap subclass makes every later gather slower; a plain ndarray view of the same pages does not.
        # The two big read-only tables (DFA 39 MB, float32 NB 57 MB) are mapped: a process reads only the
        # pages it touches, and the workers of a machine share them through the page cache.
        ptc32 = np.load(d / "ptc32.npy", mmap_mode="r").view(np.ndarray)
        nextmove = np.load(d / "nextmove.npy", mmap_mode="r").view(np.ndarray)
        classes = json.loads((d / "classes.json").read_text())
        return {
            "nextmove": nextmove,
            "rowbase": np.load(d / "row.npy").astype(np.int64) << 8,
            "output": np.load(d / "output.npy"),
            "ptc32": ptc32,
            "pc": np.load(d / "pc.npy"),
            "classes": classes,
            "alias_pairs": _alias_pairs(classes),
        }
    except (OSError, ValueError):
        return None
