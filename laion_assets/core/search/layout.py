"""Where search indices live in storage (relative to the root), in clip-retrieval's index layout.

    search/<variant>/<version>/image.index      faiss, row i = metadata row i
    search/<variant>/<version>/text.index
    search/<variant>/<version>/metadata/0.parquet   the release's columns + where the image is
    search/<variant>/<version>/index.json       what was built, from what (no timestamps)
    search/<variant>/<version>/takedown_candidates.parquet   neighbours of rows removed since the last index
    search/<variant>/LATEST                     the version the service serves

clip-retrieval's back end reads `image.index`, `text.index` and the parquet files of `metadata/`
in name order; ours keeps extra columns there (shard, tar member, PDQ), which it ignores.
"""

from __future__ import annotations

from laion_assets.core.storage.layout import (  # noqa: F401 - the search index's paths, defined there
    REMOVAL_ENTRIES,
    REMOVAL_REQUESTS_DIR,
    SEARCH_DIR as SEARCH_ROOT,
    release_dir,
    search_index_dir as index_dir,
    search_latest as latest_pointer,
    variant_latest as release_latest,
)

IMAGE_INDEX = "image.index"
TEXT_INDEX = "text.index"
METADATA_DIR = "metadata"
METADATA_FILE = f"{METADATA_DIR}/0.parquet"
MANIFEST = "index.json"
CANDIDATES = "takedown_candidates.parquet"  # takedown expansion: for a reviewer, never applied
FILES = (IMAGE_INDEX, TEXT_INDEX, METADATA_FILE, MANIFEST)
