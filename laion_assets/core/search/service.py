"""What the search page and its JSON API answer, over the indices in storage (no HTTP here).

Safety defaults live here, not in the page, so every client gets them: rows matching the removal
list (the applied entries AND requests filed since the last release) are never returned and never
get a thumbnail; rows tagged NSFW or with punsafe over `blur_punsafe_over` are marked `blur` and
their thumbnails are blurred server-side unless the caller opts in. Nothing here opens a socket:
thumbnails come from the stored tars, never from the row's URL.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageFilter

from laion_assets.core.clip.inputs import index_tar
from laion_assets.core.removal.entries import REMOVAL_SCHEMA, load_removal_list, matches_sql, request_source
from laion_assets.core.search import index as knn
from laion_assets.core.search import layout
from laion_assets.core.search.encode import QueryEncoder
from laion_assets.core.search.pdq import PdqTable
from laion_assets.core.search.requests import file_removal_request

DEFAULT_BLUR_PUNSAFE_OVER = 0.5
THUMB_SIDE = 256
BLUR_RADIUS = 16
MAX_K = 500
RESULT_FIELDS = ("SAMPLE_ID", "URL", "TEXT", "similarity", "score", "release", "version", "warc_path", "warc_offset")


class UnknownRelease(KeyError):
    pass


@dataclass(frozen=True)
class Filters:
    languages: frozenset[str] | None = None  # None: any
    nsfw: frozenset[str] | None = None  # allowed NSFW tags (UNLIKELY, UNSURE, NSFW); None: any
    min_similarity: float | None = None  # query similarity floor

    def mask(self, rel: LoadedRelease) -> np.ndarray:
        m = ~rel.hidden
        if self.languages is not None:
            m &= np.isin(rel.language, list(self.languages))
        if self.nsfw is not None:
            m &= np.isin(rel.nsfw, list(self.nsfw))
        return m


class LoadedRelease:
    """One variant's latest index: faiss indices, the metadata table, and per-row arrays."""

    def __init__(self, st, variant: str, version: str):
        base = layout.index_dir(variant, version)
        self.variant, self.version = variant, version
        self.meta = pq.read_table(st.local_file(f"{base}/{layout.METADATA_FILE}"))
        self.image = knn.read(st.local_file(f"{base}/{layout.IMAGE_INDEX}"))
        self.text = knn.read(st.local_file(f"{base}/{layout.TEXT_INDEX}"))
        col = lambda name: self.meta.column(name).to_pylist()  # noqa: E731
        self.sample_ids = np.asarray(col("SAMPLE_ID"), np.int64)
        self.row_of = {int(s): i for i, s in enumerate(self.sample_ids)}
        self.language = np.asarray([x or "" for x in col("LANGUAGE")], object)
        self.nsfw = np.asarray([x or "" for x in col("NSFW")], object)
        self.punsafe = np.asarray([np.nan if x is None else x for x in col("punsafe")], np.float32)
        self.pdq = PdqTable(col("pdq"), col("pdq_quality"))
        self.hidden = np.zeros(len(self.sample_ids), bool)

    def row(self, i: int) -> dict:
        return {k: v[0] for k, v in self.meta.slice(i, 1).to_pydict().items()}


class SearchService:
    def __init__(self, st, encoder: QueryEncoder | None, *, variants: dict[str, str] | None = None,
                 blur_punsafe_over: float = DEFAULT_BLUR_PUNSAFE_OVER):
        self.st, self.encoder, self.blur_punsafe_over = st, encoder, blur_punsafe_over
        if variants is None:
            variants = {}
            for name in _index_variants(st):
                variants[name] = st.read_bytes(layout.latest_pointer(name)).decode().strip()
        self.releases = {v: LoadedRelease(st, v, ver) for v, ver in variants.items()}
        if not self.releases:
            raise FileNotFoundError("no search index under search/: materialize `search_index` first")
        self.default = next(iter(self.releases))
        for rel in self.releases.values():
            models = {m for m in rel.meta.column("model_id").to_pylist() if m}
            if encoder is not None and models and encoder.model_id not in models:
                raise ValueError(f"release {rel.variant} was embedded with {sorted(models)}, the query model is "
                                 f"{encoder.model_id}: their embeddings are not comparable")
        self._lock = threading.Lock()
        self._tars: dict[str, dict[str, tuple[int, int]]] = {}
        self.refresh_removals()

    # -- removal list ----------------------------------------------------------------------------
    def removal_entries(self) -> pa.Table:
        """The applied list plus every request file filed since (all through the loader)."""
        tables = []
        if self.st.exists(layout.REMOVAL_ENTRIES):
            tables.append(self.st.read_parquet(layout.REMOVAL_ENTRIES).select(REMOVAL_SCHEMA.names))
        sources = [s for rel in self.st.list(layout.REMOVAL_REQUESTS_DIR)
                   if (s := request_source(rel.rsplit("/", 1)[-1], rel)) is not None]
        if sources:
            entries, _rejected = load_removal_list(sources, read=lambda s: self.st.read_bytes(s.uri))
            tables.append(entries)
        return pa.concat_tables([t.cast(REMOVAL_SCHEMA) for t in tables]) if tables else REMOVAL_SCHEMA.empty_table()

    def refresh_removals(self) -> int:
        """Mark every indexed row the removal list matches as hidden; returns how many are hidden."""
        entries = self.removal_entries()
        total = 0
        with duckdb.connect() as con:
            con.register("entries", entries)
            for rel in self.releases.values():
                rows = rel.meta.select(["SAMPLE_ID", "URL", "sha256", "pdq", "pdq_quality"])
                con.register("rows_raw", rows)
                con.execute("CREATE OR REPLACE TEMP VIEW rows_v AS SELECT *, NULL::VARCHAR AS md5, "
                            "NULL::VARCHAR AS sha1 FROM rows_raw")
                hit = {int(r[0]) for r in con.sql(f"SELECT DISTINCT SAMPLE_ID FROM ({matches_sql('rows_v', 'entries')})").fetchall()}
                rel.hidden = np.isin(rel.sample_ids, np.asarray(sorted(hit), np.int64))
                total += int(rel.hidden.sum())
        return total

    # -- queries ---------------------------------------------------------------------------------
    def release(self, name: str | None) -> LoadedRelease:
        name = name or self.default
        if name not in self.releases:
            raise UnknownRelease(name)
        return self.releases[name]

    def _nearest(self, rel: LoadedRelease, which: str, vec: np.ndarray, k: int, filters: Filters) -> list[dict]:
        index = rel.image if which == "image" else rel.text
        n = index.ntotal
        k = max(1, min(int(k), MAX_K))
        mask = filters.mask(rel)
        want = min(n, k * 4)
        while True:
            sims, ids = knn.search(index, vec, want)
            out = [(int(i), float(s)) for i, s in zip(ids[0], sims[0]) if i >= 0 and mask[i]
                   and (filters.min_similarity is None or s >= filters.min_similarity)]
            if len(out) >= k or want >= n or (filters.min_similarity is not None and sims[0][-1] < filters.min_similarity):
                break
            want = min(n, want * 4)
        return [self.result(rel, i, s) for i, s in out[:k]]

    def blur(self, rel: LoadedRelease, i: int) -> bool:
        p = rel.punsafe[i]
        return bool(rel.nsfw[i] == "NSFW" or (not np.isnan(p) and p > self.blur_punsafe_over))

    def result(self, rel: LoadedRelease, i: int, similarity: float | None) -> dict:
        r = rel.row(i)
        out = {"SAMPLE_ID": r["SAMPLE_ID"], "URL": r["URL"], "TEXT": r["TEXT"],
               "similarity": None if similarity is None else round(similarity, 6),
               "score": r["similarity"], "release": rel.variant, "version": rel.version,
               "warc_path": r["warc_path"], "warc_offset": r["warc_offset"]}
        # "id": SAMPLE_ID as a string, since a JavaScript number loses integers over 2^53.
        out.update({"id": str(r["SAMPLE_ID"]), "page_url": r["page_url"], "crawl": r["crawl"], "LANGUAGE": r["LANGUAGE"], "NSFW": r["NSFW"],
                    "punsafe": r["punsafe"], "LICENSE": r["LICENSE"], "blur": self.blur(rel, i),
                    "thumbnail": f"/thumb/{rel.variant}/{r['SAMPLE_ID']}"})
        return out

    def search_text(self, q: str, k: int = 20, release: str | None = None, filters: Filters = Filters(),
                    *, index: str = "image") -> list[dict]:
        """Rows whose image (index='image') or caption (index='text') is nearest the text, best first."""
        rel = self.release(release)
        with self._lock:
            vec = self.encoder.text(q)
        return self._nearest(rel, index, vec, k, filters)

    def search_image(self, data: bytes, k: int = 20, release: str | None = None,
                     filters: Filters = Filters()) -> dict:
        """Nearest rows by CLIP image embedding, and every row whose PDQ hash is within the takedown
        threshold of the upload's (resized and re-encoded copies); removed rows never appear."""
        rel = self.release(release)
        with self._lock:
            q = self.encoder.image(data)
        nearest = self._nearest(rel, "image", q.embedding, k, filters)
        copies = []
        for i, dist in rel.pdq.matches(q.pdq):
            if not rel.hidden[i]:
                copies.append({**self.result(rel, i, float(rel.image.reconstruct(i) @ q.embedding)),
                               "pdq_distance": dist})
        return {"nearest": nearest, "pdq_matches": copies, "query_pdq": q.pdq, "query_pdq_quality": q.pdq_quality}

    # -- rows, thumbnails, requests --------------------------------------------------------------
    def row_index(self, release: str | None, sample_id: int) -> tuple[LoadedRelease, int]:
        rel = self.release(release)
        if sample_id not in rel.row_of:
            raise KeyError(sample_id)
        return rel, rel.row_of[sample_id]

    def thumbnail(self, release: str | None, sample_id: int, *, unblur: bool = False) -> bytes | None:
        """JPEG thumbnail from the stored tar; None for a row on the removal list (never shown)."""
        rel, i = self.row_index(release, sample_id)
        if rel.hidden[i]:
            return None
        r = rel.row(i)
        if not (r["images_dir"] and r["tar_path"] and r["tar_member"]):
            return None
        tar = self.st.local_file(f"{r['images_dir']}/{r['tar_path']}")
        members = self._tars.get(str(tar))
        if members is None:
            members = self._tars.setdefault(str(tar), index_tar(Path(tar)))
        offset, size = members[r["tar_member"]]
        with open(tar, "rb") as f:
            f.seek(offset)
            data = f.read(size)
        with Image.open(io.BytesIO(data)) as im:
            im = im.convert("RGB")
            im.thumbnail((THUMB_SIDE, THUMB_SIDE))
            if self.blur(rel, i) and not unblur:
                im = im.filter(ImageFilter.GaussianBlur(BLUR_RADIUS))
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=85)
        return buf.getvalue()

    def file_request(self, release: str | None, sample_id: int, *, reason: str, contact: str) -> dict:
        rel, i = self.row_index(release, sample_id)
        rid, relpath = file_removal_request(self.st, rel.row(i), reason=reason, contact=contact)
        with self._lock:
            hidden = self.refresh_removals()
        return {"request_id": rid, "file": relpath, "hidden_rows": hidden}


def _index_variants(st) -> list[str]:
    from laion_assets.core.search.build import subfolders

    names = subfolders(st, layout.SEARCH_ROOT)
    # The default release (releases/LATEST names <variant>/<version>) first.
    default = st.read_bytes("releases/LATEST").decode().split("/")[0] if st.exists("releases/LATEST") else None
    names = [n for n in names if st.exists(layout.latest_pointer(n))]
    return sorted(names, key=lambda n: (n != default, n))
