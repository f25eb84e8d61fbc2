"""The release side of semantic dedup without the pipeline: a variant's rows minus its duplicates
(`ReleaseRows.without`, a view the part writers' cursors read), the variant option's validation,
and the card paragraph the release check requires (real DuckDB, real parquet)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from laion_assets.core.lib.validation import ConfigError
from laion_assets.core.release.card import dataset_card
from laion_assets.core.release.files import ReleaseVariant, write_release_files
from laion_assets.core.release.writer import ReleaseRows
from laion_assets.core.schemas.release import RELEASE_SCHEMA


def _table(n: int) -> pa.Table:
    rows = [{"SAMPLE_ID": (i * 0x9E3779B97F4A7C15) % (1 << 63), "URL": f"http://127.0.0.1/img/{i}.jpg",
             "TEXT": f"caption {i}", "HEIGHT": 64, "WIDTH": 64, "LICENSE": None, "NSFW": "UNLIKELY",
             "punsafe": 0.9 if i % 5 == 0 else 0.1, "similarity": 0.3, "LANGUAGE": "en", "sha256": f"{i:064x}",
             "crawl": "C", "warc_path": "crawl-data/x.warc.gz", "warc_offset": i, "page_url": "http://127.0.0.1/p",
             "model_id": "m", "weights_id": "w", "threshold": 0.2, "punsafe_source": "zero_shot:m"} for i in range(n)]
    return pa.Table.from_pylist(rows, schema=RELEASE_SCHEMA)


def test_rows_without_duplicates_are_written_counted_and_described_without_them(tmp_path):
    table = _table(200)
    ids = table.column("SAMPLE_ID").to_pylist()
    punsafe = dict(zip(ids, table.column("punsafe").to_pylist()))
    drop = [i for i in ids[1::7] if punsafe[i] <= 0.5]  # rows the 0.5 cut keeps
    with ReleaseRows.from_table(table) as rows:
        kept = rows.without("v-1", pa.array(drop, pa.int64()))
        files = kept.write_parts(0.5, tmp_path, rows_per_part=40)  # several parts, written by cursors in threads
        written = pq.read_table([tmp_path / f["path"] for f in files]).column("SAMPLE_ID").to_pylist()
        want = sorted(i for i in ids if punsafe[i] <= 0.5 and i not in set(drop))
        assert sorted(written) == want and len(files) > 1
        assert kept.count(0.5) == len(want) == len(kept.sample_ids(0.5))
        # The NSFW policy's drops are the same rows with or without the duplicates gone.
        assert sorted(kept.policy_drops(0.5).column("sample_id").to_pylist()) == \
            sorted(rows.policy_drops(0.5).column("sample_id").to_pylist())
        assert rows.count(0.5) == len(want) + len(drop)  # the build's own rows are untouched
        assert sum(kept.describe(0.5)["rows_by_crawl"].values()) == len(want)


def test_variant_option_is_validated_and_only_written_when_on(tmp_path):
    with pytest.raises(ConfigError, match="semdedup_min_cosine"):
        ReleaseVariant("v", 0.5, 1.5)
    assert ReleaseVariant("v", 0.5).describe() == {"name": "v", "punsafe_max": 0.5}
    on = ReleaseVariant("v", 0.5, 0.9)
    summary = {"min_cosine": 0.9, "seed": 1234, "clusters": 3, "rows_compared": 50, "rows_not_compared": 2,
               "dropped": 7, "file": "semantic_duplicates.parquet", "method": "SemDeDup"}
    with ReleaseRows.from_table(_table(60)) as rows:
        files = rows.write_parts(0.5, tmp_path, rows_per_part=100)
        described = rows.describe(0.5)
    manifest = write_release_files(tmp_path, files=files, version="r-x", variant=on, described=described,
                                   build={"semantic_dedup": summary})
    assert manifest["variant"]["semdedup_min_cosine"] == 0.9
    card = (tmp_path / "README.md").read_text()
    assert "## Semantic duplicates removed" in card and "**7** of 50 rows compared" in card
    off = dataset_card({**manifest, "semantic_dedup": None})
    assert "Semantic duplicates" not in off
