"""`crawl_source`: which crawl `crawl_manifest` lists, where its WARC files are, and discovery."""

import dagster as dg
from dagster_aws.s3 import S3Resource
from pydantic import field_validator, model_validator

from laion_assets.core.lib.validation import ConfigError, require_int_range


class CrawlSourceResource(dg.ConfigurableResource):
    """Which crawl `crawl_manifest` lists by default, where its WARC files are, and K per shard.

    `source_dir`: a local directory, an `s3://` prefix of WARC files, or a Common Crawl listing
    (`.../crawl-data/CC-MAIN-YYYY-WW/warc.paths.gz` on `s3://commoncrawl/` or
    `https://data.commoncrawl.org/`). `s3` reads S3 sources other than the storage root's bucket
    (`use_unsigned_session=True` for Common Crawl's public bucket). `max_files` (0: all) caps the
    listing, e.g. to try a few WARCs of a 90k-file crawl."""

    crawl: str
    source_dir: str
    files_per_shard: int = 10
    max_files: int = 0
    s3: S3Resource | None = None  # None: anonymous (Common Crawl's public bucket)
    # crawl discovery (crawl_discovery_sensor): where to look, and which crawls it may register
    discovery_root: str = ""
    discover_only: list[str] = []
    discover_newer_than: str = ""
    discover_max_crawls_per_tick: int = 1
    discover_listing: str = "warc.paths.gz"  # or "wat.paths.gz": extract from WAT metadata instead

    @model_validator(mode="after")
    def _check_listing(self):
        if self.discover_listing not in ("warc.paths.gz", "wat.paths.gz"):
            raise ConfigError("crawl_source.discover_listing", self.discover_listing, "must be warc.paths.gz or wat.paths.gz")
        return self

    @model_validator(mode="after")
    def _check_counts(self):
        for name, lo in (("files_per_shard", 1), ("max_files", 0), ("discover_max_crawls_per_tick", 1)):
            value = getattr(self, name)
            if isinstance(value, int):  # an EnvVar is checked once resolved
                require_int_range(f"crawl_source.{name}", value, lo)
        return self

    @field_validator("crawl")
    @classmethod
    def _check_crawl(cls, crawl: str) -> str:
        from laion_assets.settings import check_crawl_name

        return check_crawl_name(crawl, "crawl_source.crawl") if isinstance(crawl, str) and crawl else crawl

    def s3_client(self):
        return (self.s3 or S3Resource(use_unsigned_session=True)).get_client()

    def select(self, names: list[str]) -> list[str]:
        from laion_assets.core.crawl.manifest import select_crawls

        return select_crawls(names, newer_than=self.discover_newer_than, only=self.discover_only)
