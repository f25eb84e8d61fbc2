"""Start-up: the language model from the per-machine cache is py3langid's own, array for array; a
fresh process imports the extractor without ftfy, trafilatura or the model (they load when used)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from py3langid.langid import MODEL_FILE, LanguageIdentifier

from laion_assets.core.extract import langmodel

ROOT = Path(__file__).resolve().parents[3]


def test_cached_model_is_the_wheels_model(tmp_path, monkeypatch):
    monkeypatch.setenv("LAION_CACHE_DIR", str(tmp_path))
    first = langmodel.load_identifier()  # writes the cache
    assert (langmodel.cached_model_dir() / "classes.json").exists()
    assert not [p for p in tmp_path.iterdir() if "." in p.name]  # no temporary directory left behind
    second = langmodel.load_identifier()  # reads it
    ref = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    for me in (first, second):
        assert np.array_equal(np.asarray(me.nb_ptc), np.asarray(ref.nb_ptc)) and me.nb_ptc.dtype == ref.nb_ptc.dtype
        assert np.array_equal(me.nb_pc, ref.nb_pc) and me.nb_classes == ref.nb_classes
        assert me.tk_nextmove == ref.tk_nextmove and me.tk_row == ref.tk_row and me.tk_output == ref.tk_output
        for text in ("un petit chien dans le jardin", "Search", "Ein kleiner Hund", "小さな犬"):
            assert me.classify(text) == ref.classify(text)


def test_unwritable_cache_falls_back_to_the_wheel(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("LAION_CACHE_DIR", str(blocker / "sub"))
    ident = langmodel.load_identifier()
    assert ident.classify("un petit chien dans le jardin")[0] == "fr"


def test_import_loads_no_model_and_no_repair_library():
    code = ("import sys, laion_assets.core.extract; "
            "print(sorted(m for m in ('ftfy', 'trafilatura', 'py3langid', 'lxml') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout
    assert out.strip() == "[]"


def test_batch_tables_from_the_cache_are_the_wheels_model(tmp_path, monkeypatch):
    """The batch path's arrays (float32 table mapped from the cache, no identifier built) equal what
    py3langid's identifier holds, on a fresh cache and on a cache written before."""
    monkeypatch.setenv("LAION_CACHE_DIR", str(tmp_path))
    ref = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    for _ in range(2):  # first call writes the cache, the second reads it
        t = langmodel.load_tables()
        assert t is not None and type(t["ptc32"]) is np.ndarray  # a plain ndarray, not a memmap subclass
        assert t["ptc32"].dtype == np.float32 and np.array_equal(t["ptc32"], ref.nb_ptc.astype(np.float32))
        assert t["nextmove"].tolist() == list(ref.tk_nextmove)
        assert t["rowbase"].tolist() == ref._rowbase and t["output"].tolist() == list(ref.tk_output)
        assert np.array_equal(t["pc"], ref.nb_pc) and t["classes"] == list(ref.nb_classes)
        assert t["alias_pairs"] == ref._alias_pairs


def test_extracting_a_file_imports_no_heavy_stack(tmp_path):
    """A fresh extraction process (import + one real WARC) pulls in neither the ML stack, Dagster, nor
    the sample-crawl writer (warcio, PIL) that settings.py used to import at module level, nor pandas
    (which `pa.array` imports: the tables are built by arrowcols)."""
    warc = Path(os.environ.get("LAION_REAL_WARC_DIR") or ROOT.parent / "shared" / "data" / "real-warc")
    warc = warc / "cc-2014-35-excerpt.warc.gz"
    if not warc.exists():
        pytest.skip(f"{warc} is absent (../shared/data/real-warc beside the checkout)")
    code = ("import sys; from laion_assets.core.extract import extract_shard; "
            f"r = extract_shard([{str(warc)!r}], crawl='X'); assert r.stats['pairs_kept'] > 0; "
            "print(sorted(m for m in ('torch', 'open_clip', 'dagster', 'warcio', 'PIL', 'pandas', 'pyarrow.compute') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT), "LAION_CACHE_DIR": str(tmp_path)}).stdout
    assert out.strip() == "[]"
