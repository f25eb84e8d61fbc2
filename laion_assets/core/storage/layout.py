"""Every path under the storage root, defined once.

Stage code, the release, the removal list, the sample and dbt's sources (passed as dbt vars, see
`dbt_vars`) all take their paths from here; `laion_assets_tests/core/storage/test_layout.py` pins
`dbt/models/sources.yml` to these globs. Paths are logical (relative to the root, `/`-separated):
the `Storage` protocol maps them to a local directory or an `s3://` prefix.
"""

from __future__ import annotations

from laion_assets.core.storage.keys import split_partition_key, validate_crawl_name, validate_shard_name

MANIFESTS_DIR = "manifests"
WAREHOUSE = "warehouse.duckdb"
SAMPLE_CRAWL_DIR = "sample-crawl"

REMOVAL_DIR = "removal"
REMOVAL_REQUESTS_DIR = f"{REMOVAL_DIR}/requests"
REMOVAL_ENTRIES = f"{REMOVAL_DIR}/entries.parquet"
REMOVAL_REJECTED = f"{REMOVAL_DIR}/rejected.parquet"
REMOVAL_REQUESTS_INDEX = f"{REMOVAL_DIR}/requests.json"  # every filed request's record (no values)
REMOVAL_FLAGGED = f"{REMOVAL_DIR}/flagged.json"
REMOVAL_RECEIPTS_DIR = f"{REMOVAL_DIR}/receipts"  # <request_id>.json per request
REMOVAL_RECEIPTS_TABLE = f"{REMOVAL_DIR}/receipts.parquet"

RELEASES_DIR = "releases"
RELEASES_LATEST = f"{RELEASES_DIR}/LATEST"

# Builder-side, never offered: what an incremental re-derive matches new removal entries against
# (core/release/incremental.py): STATE.json names the index files of the last publish.
RELEASE_INDEX_DIR = "release-index"
RELEASE_INDEX_STATE = f"{RELEASE_INDEX_DIR}/STATE.json"

SEARCH_DIR = "search"  # k-NN indices per release variant (core/search/layout.py: the files inside)

# What dbt's sources read (relative to the root; `*` is a crawl, then a shard file).
SHARD_GLOBS = {
    "filtered_glob": "*/filtered/*.parquet",
    "drops_glob": "*/drops/*.parquet",
    "downloads_glob": "*/images/*.parquet",
}


def manifest_path(crawl: str) -> str:
    return f"{MANIFESTS_DIR}/{validate_crawl_name(crawl)}.parquet"


def release_dir(variant: str, version: str) -> str:
    """`releases/<variant>/<version>/`: parts, README.md, manifest.json (write-once)."""
    return f"{RELEASES_DIR}/{variant}/{version}"


# In a release version's directory of a variant with semantic dedup on: the rows it dropped as
# `semantic_duplicate` (sample_id, reason, duplicate_of, similarity; core/release/semantic.py).
RELEASE_SEMANTIC_DROPS = "semantic_duplicates.parquet"


def variant_latest(variant: str) -> str:
    return f"{RELEASES_DIR}/{variant}/LATEST"


def diff_path(variant: str, old: str, new: str) -> str:
    """Without suffix: the diff is `<this>.parquet` with its summary `<this>.json`."""
    return f"{RELEASES_DIR}/{variant}/diffs/{old}__{new}"


def search_index_dir(variant: str, version: str) -> str:
    """`search/<variant>/<version>/`: clip-retrieval's index layout for that release version."""
    return f"{SEARCH_DIR}/{variant}/{version}"


def search_latest(variant: str) -> str:
    return f"{SEARCH_DIR}/{variant}/LATEST"


def dbt_sources(root_uri: str) -> dict[str, str]:
    """The absolute globs dbt's sources read under `root_uri`."""
    root = root_uri.rstrip("/")
    return {**{k: f"{root}/{g}" for k, g in SHARD_GLOBS.items()}, "removal_entries": f"{root}/{REMOVAL_ENTRIES}"}


class ShardPaths:
    """Logical paths (relative to the storage root) of one shard's outputs, stage by stage."""

    def __init__(self, crawl: str, shard: str):
        self.crawl, self.shard = validate_crawl_name(crawl), validate_shard_name(shard)

    @classmethod
    def from_partition_key(cls, partition_key: str) -> ShardPaths:
        return cls(*split_partition_key(partition_key))

    @property
    def pairs(self) -> str:
        return f"{self.crawl}/pairs/{self.shard}.parquet"

    @property
    def pair_errors(self) -> str:
        return f"{self.crawl}/pairs/{self.shard}.errors.parquet"

    @property
    def pair_stats(self) -> str:
        return f"{self.crawl}/pairs/{self.shard}.stats.parquet"

    @property
    def images_dir(self) -> str:
        """Committed directory; its record is `downloads`."""
        return f"{self.crawl}/images/{self.shard}"

    @property
    def downloads(self) -> str:
        return f"{self.crawl}/images/{self.shard}.parquet"

    @property
    def embeddings_dir(self) -> str:
        """Committed directory; its record is `scores`."""
        return f"{self.crawl}/scores/{self.shard}"

    @property
    def scores(self) -> str:
        return f"{self.crawl}/scores/{self.shard}.parquet"

    @property
    def filtered(self) -> str:
        return f"{self.crawl}/filtered/{self.shard}.parquet"

    @property
    def drops(self) -> str:
        """The shard's drop log: outside `filtered/`, so the kept-pairs glob never reads it."""
        return f"{self.crawl}/drops/{self.shard}.parquet"
