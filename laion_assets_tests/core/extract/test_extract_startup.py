"""Start-up: the language model from the per-machine cache is py3langid's own, array for array; a
fresh process imports the extractor without ftfy, trafilatura or the model (they load when used)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
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
