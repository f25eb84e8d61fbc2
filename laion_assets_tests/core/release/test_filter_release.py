import json
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from laion_assets.core.filter.checks import CHECKS as FILTER_CHECKS
from laion_assets.core.filter.shard import FilterConfig, filter_shard
from laion_assets.core.lib.ids import sample_id
from laion_assets.core.clip.nsfw_head import load_nsfw_head
from laion_assets.core.checks import run_checks
from laion_assets.core.release.checks import CHECKS as RELEASE_CHECKS
from laion_assets.core.release.files import ReleaseVariant, verify_release_dir, write_release
from laion_assets.core.release.diff import release_diff
from laion_assets.core.release.checks import row_count_verdict
from laion_assets.core.schemas import DOWNLOAD_SCHEMA, PAIR_SCHEMA, RELEASE_SCHEMA, SCORE_SCHEMA
from laion_assets.core.lib.validation import ConfigError


def _pair(key, url, text, optout=False, lang="en"):
    return {"key": key, "url": url, "text": text, "page_url": "http://p.example/", "crawl": "C",
            "warc_path": "/w/a.warc.gz", "warc_offset": int(key) * 100, "caption_language": lang,
            "optout_page": optout, "license": "https://creativecommons.org/licenses/by/4.0/"}


def _shard(tmp_path: Path):
    pairs = [
        _pair("000000000", "http://i.example/1.jpg", "a red circle"),  # kept
        _pair("000000001", "http://i.example/2.jpg", "a blue star"),  # below threshold
        _pair("000000002", "http://i.example/3.jpg", "a green cross"),  # download failed
        _pair("000000003", "http://i.example/4.jpg", "a black ring", optout=True),  # page opt-out
        _pair("000000004", "http://i.example/5.jpg", "un carré jaune", lang="fr"),  # 0.27 >= 0.26
        _pair("000000005", "http://i.example/6.jpg", "a white square"),  # not scored
        _pair("000000006", "http://i.example/7.jpg", "a purple star"),  # robots.txt opt-out
    ]
    ok = lambda k, r: {"key": k, "url": "u", "status": "ok", "width": 300, "height": 200, "sha256": f"{r:064x}", "md5": f"{r:032x}"}  # noqa: E731
    downloads = [ok("000000000", 1), ok("000000001", 2),
                 {"key": "000000002", "url": "u", "status": "failed", "reason": "http_error"},
                 ok("000000003", 3), ok("000000004", 4), ok("000000005", 5),
                 {"key": "000000006", "url": "u", "status": "skipped", "reason": "robots_txt"}]
    sc = lambda k, s, row, t=0.28: {"key": k, "status": "scored", "similarity": s, "threshold": t, "model_id": "m", "weights_id": "w1", "punsafe": 0.1, "nsfw": "UNLIKELY", "embedding_row": row}  # noqa: E731
    scores = [sc("000000000", 0.61, 0), sc("000000001", 0.05, 1), sc("000000003", 0.7, 2),
              sc("000000004", 0.27, 3, 0.26),
              {"key": "000000005", "status": "failed", "reason": "decode_error", "model_id": "m"}]
    paths = {}
    for name, rows, schema in [("pairs", pairs, PAIR_SCHEMA), ("downloads", downloads, DOWNLOAD_SCHEMA),
                               ("scores", scores, SCORE_SCHEMA)]:
        paths[name] = tmp_path / f"{name}.parquet"
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), paths[name])
    return paths


def test_filter_keeps_publishable_pairs_and_logs_every_drop_with_one_reason(tmp_path: Path):
    p = _shard(tmp_path)
    result = filter_shard(p["pairs"], p["downloads"], p["scores"], shard="00000")
    assert result.table.column("key").to_pylist() == ["000000000", "000000004"]
    assert dict(zip(result.drops.column("key").to_pylist(), result.drops.column("reason").to_pylist())) == {
        "000000001": "below_threshold", "000000002": "not_downloaded:http_error",
        "000000003": "opt_out:page_optout", "000000005": "not_scored:decode_error",
        "000000006": "opt_out:robots_txt",
    }
    assert result.stats["pairs_in"] == 7 == result.table.num_rows + result.drops.num_rows
    kept = result.table.to_pylist()
    assert kept[0]["weights_id"] == "w1" and kept[0]["md5"] == f"{1:032x}" and kept[0]["pdq"] is None
    assert kept[0]["punsafe_source"] == "zero_shot:m" and kept[0]["license"].startswith("https://creativecommons")
    strict = filter_shard(p["pairs"], p["downloads"], p["scores"], shard="00000",
                          config=FilterConfig(min_similarity=0.5))
    assert strict.table.column("key").to_pylist() == ["000000000"]
    out, drops = tmp_path / "filtered.parquet", tmp_path / "drops.parquet"
    pq.write_table(result.table, out)
    pq.write_table(result.drops, drops)
    views = {"filtered": out, "drops": drops, "pairs": p["pairs"]}
    assert all(o.passed for o in run_checks(views, FILTER_CHECKS))
    pq.write_table(result.drops.slice(1), drops)  # a pair lost from the drop log is caught
    failing = {o.name for o in run_checks(views, FILTER_CHECKS) if not o.passed}
    assert failing == {"filtered_drop_log_accounts_for_every_pair"}


def test_filter_settings_are_validated():
    with pytest.raises(ConfigError, match="min_similarity=2.0"):
        FilterConfig(min_similarity=2.0)
    with pytest.raises(ConfigError, match="drop_nsfw_over=nan"):
        FilterConfig(drop_nsfw_over=float("nan"))


def test_trained_nsfw_head_replaces_zero_shot_punsafe(tmp_path: Path):
    """Train a small MLP on synthetic embeddings (unsafe = a direction), save it, filter with it."""
    g = torch.Generator().manual_seed(0)
    d = 16
    direction = torch.nn.functional.normalize(torch.randn(d, generator=g), dim=0)
    x = torch.nn.functional.normalize(torch.randn(512, d, generator=g), dim=1)
    y = (x @ direction > 0.2).float()
    head = torch.nn.Sequential(torch.nn.Linear(d, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    opt = torch.optim.Adam(head.parameters(), lr=0.05)
    for _ in range(200):
        opt.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(head(x)[:, 0], y).backward()
        opt.step()
    ckpt = tmp_path / "nsfw-head.pt"
    torch.save({"layers": [(head[0].weight.detach(), head[0].bias.detach()),
                           (head[2].weight.detach(), head[2].bias.detach())],
                "clip_model_id": "m", "name": "test-head"}, ckpt)
    loaded = load_nsfw_head(ckpt)

    p = _shard(tmp_path)
    emb_dir = tmp_path / "emb"
    emb_dir.mkdir()
    unsafe, safe = direction.numpy(), -direction.numpy()
    np.save(emb_dir / "img_emb.npy", np.stack([unsafe, safe, safe, unsafe]).astype(np.float16))
    result = filter_shard(p["pairs"], p["downloads"], p["scores"], shard="00000",
                          config=FilterConfig(nsfw_head=loaded, drop_nsfw_over=0.5), embeddings_dir=emb_dir)
    drops = dict(zip(result.drops.column("key").to_pylist(), result.drops.column("reason").to_pylist()))
    assert drops["000000000"] == "nsfw_policy" and drops["000000004"] == "nsfw_policy"
    assert result.table.num_rows == 0
    kept = filter_shard(p["pairs"], p["downloads"], p["scores"], shard="00000",
                        config=FilterConfig(nsfw_head=loaded), embeddings_dir=emb_dir).table.to_pylist()
    assert [r["punsafe"] > 0.9 for r in kept] == [True, True]
    assert all(r["punsafe_source"].startswith("head:test-head@") for r in kept)
    other = load_nsfw_head(ckpt)
    object.__setattr__(other, "clip_model_id", "another-model")
    with pytest.raises(ValueError, match="trained on another-model"):
        filter_shard(p["pairs"], p["downloads"], p["scores"], shard="00000",
                     config=FilterConfig(nsfw_head=other), embeddings_dir=emb_dir)


def _release_table(n: int, *, offset: int = 0) -> pa.Table:
    rows = []
    for i in range(offset, offset + n):
        url, text = f"http://i.example/{i}.jpg", f"caption {i}"
        rows.append({"SAMPLE_ID": sample_id(url, text), "URL": url, "TEXT": text, "HEIGHT": 20, "WIDTH": 10,
                     "LICENSE": None, "NSFW": "UNLIKELY", "punsafe": 0.01, "similarity": 0.3 + i / 1000,
                     "LANGUAGE": "en", "sha256": f"{i:064x}", "crawl": "C", "warc_path": "C/a.warc.gz",
                     "warc_offset": i, "page_url": "http://p/", "model_id": "m", "weights_id": "w",
                     "threshold": 0.28, "punsafe_source": "zero_shot:m"})
    return pa.Table.from_pylist(sorted(rows, key=lambda r: r["SAMPLE_ID"]), schema=RELEASE_SCHEMA)


def test_release_version_depends_only_on_rows_and_variant(tmp_path: Path):
    variant = ReleaseVariant("research", 0.95)
    build = {"funnel": {"pairs_extracted": 9, "dropped": {"below_threshold": 4}},
             "removal": {"sources": {"iwf": {"entries": 3, "kinds": {"image_md5": 3}, "rows_removed": 0,
                                             "listed_on": "2026-01-01"}}, "rows_removed": 0}}
    table = _release_table(5)
    # The same rows in another order and chunking (another shard layout): the same release.
    shuffled = pa.concat_tables([table.slice(3), table.slice(0, 3)])
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    m_a = write_release(table, a, variant=variant, build=build, rows_per_part=2)
    m_b = write_release(shuffled, b, variant=variant, build=build, rows_per_part=2)
    assert m_a["version"] == m_b["version"]
    assert sorted(p.name for p in a.iterdir()) == ["README.md", "manifest.json", "part-00000.parquet",
                                                   "part-00001.parquet", "part-00002.parquet"]
    for name in ("manifest.json", "README.md", "part-00000.parquet", "part-00002.parquet"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    # Parts are content-defined SAMPLE_ID ranges, each sorted.
    ids = [pq.read_table(a / f"part-{i:05d}.parquet").column("SAMPLE_ID").to_pylist() for i in range(3)]
    assert all(x == sorted(x) for x in ids) and sorted(sum(ids, [])) == sorted(table.column("SAMPLE_ID").to_pylist())
    assert all(i * (1 << 63) // 3 <= x < (i + 1) * (1 << 63) // 3 for i, part in enumerate(ids) for x in part)
    assert write_release(table, c, variant=ReleaseVariant("research-safe", 0.95), build=build,
                         rows_per_part=2)["version"] != m_a["version"]
    assert write_release(_release_table(4), tmp_path / "d", variant=variant, build=build,
                         rows_per_part=2)["version"] != m_a["version"]
    # The NSFW policy is applied by the writer: punsafe over the cut never reaches a part.
    risky = table.set_column(table.schema.get_field_index("punsafe"), "punsafe",
                             pa.array([0.01, 0.99, 0.01, None, 0.01], pa.float32()))
    assert write_release(risky, tmp_path / "e", variant=variant, build=build)["rows"] == 3
    assert verify_release_dir(a) == []
    manifest = json.loads((a / "manifest.json").read_text())
    assert [c["name"] for c in manifest["columns"]] == RELEASE_SCHEMA.names
    assert "created_at" not in manifest and str(tmp_path) not in (a / "manifest.json").read_text()
    # The card's counts are checked against the table: tampering is caught.
    card = (a / "README.md").read_text()
    (a / "README.md").write_text(card.replace("- rows: **5**", "- rows: **6**"))
    assert any("card does not state" in p for p in verify_release_dir(a))


def test_release_parts_order_pairs_sharing_a_sample_id_by_url_and_text(tmp_path: Path):
    # Two different pairs with one 63-bit SAMPLE_ID (a collision: ~never, but the bytes must still be
    # a function of the rows): whatever order they arrive in, the part holds them by (URL, TEXT).
    table = _release_table(6)
    ids = table.column("SAMPLE_ID").to_pylist()
    tied = table.set_column(0, "SAMPLE_ID", pa.array([ids[0], ids[0], ids[0], *ids[3:]], pa.int64()))
    reversed_rows = tied.take(pa.array(list(range(tied.num_rows))[::-1]))
    variant, build = ReleaseVariant("research", 0.95), {}
    a = write_release(tied, tmp_path / "a", variant=variant, build=build)
    b = write_release(reversed_rows, tmp_path / "b", variant=variant, build=build)
    assert a["version"] == b["version"]
    part = pq.read_table(tmp_path / "a" / "part-00000.parquet")
    head = list(zip(part.column("SAMPLE_ID").to_pylist(), part.column("URL").to_pylist(),
                    part.column("TEXT").to_pylist()))
    assert head == sorted(head) and len(head) == 6
    assert (tmp_path / "a" / "part-00000.parquet").read_bytes() == (tmp_path / "b" / "part-00000.parquet").read_bytes()


def test_release_checks_catch_each_broken_rule():
    table = _release_table(3)
    hashes = pa.table({"SAMPLE_ID": table.column("SAMPLE_ID"), "md5": pa.array([None] * 3, pa.string()),
                       "sha1": pa.array([None] * 3, pa.string()), "pdq": pa.array([None] * 3, pa.string()),
                       "pdq_quality": pa.array([None] * 3, pa.int32()),
                       "url_canonical": pa.array([None] * 3, pa.string()), "host_canonical": pa.array([None] * 3, pa.string())})
    entries = pa.table({"kind": ["domain"], "value": ["other.example"], "source": ["s"], "listed_on": [None]})
    views = {"release": table, "release_hashes": hashes, "removal": entries}
    assert all(o.passed for o in run_checks(views, RELEASE_CHECKS))
    rows = table.to_pylist()
    rows[1].update(URL=rows[0]["URL"], TEXT=rows[0]["TEXT"], sha256=rows[0]["sha256"])
    rows[2].update(similarity=0.1, warc_path="/home/builder/crawl/a.warc.gz")
    bad = pa.Table.from_pylist(rows, schema=RELEASE_SCHEMA)
    entries = pa.table({"kind": ["domain"], "value": ["example"], "source": ["s"], "listed_on": [None]})
    failing = {o.name for o in run_checks({**views, "release": bad, "removal": entries}, RELEASE_CHECKS)
               if not o.passed}
    assert failing == {"release_no_removal_match", "release_unique_pairs", "release_unique_images",
                       "release_similarity_over_threshold", "release_provenance"}


def test_row_count_gate_and_diff():
    prev = _release_table(100)
    cur = _release_table(90)  # rows 90..99 gone
    gone = prev.column("SAMPLE_ID").to_pylist()
    cur_ids = set(cur.column("SAMPLE_ID").to_pylist())
    gone = [g for g in gone if g not in cur_ids]
    ids = lambda xs: pa.array(xs, pa.int64())  # noqa: E731
    unexplained = row_count_verdict(prev.column("SAMPLE_ID").combine_chunks(), cur.column("SAMPLE_ID").combine_chunks(),
                                    ids([]), max_unexplained_drop_fraction=0.05)
    assert not unexplained.passed and unexplained.unexplained == 10
    explained = row_count_verdict(prev.column("SAMPLE_ID").combine_chunks(), cur.column("SAMPLE_ID").combine_chunks(),
                                  ids(gone), max_unexplained_drop_fraction=0.05)
    assert explained.passed and explained.lost == 10
    assert not row_count_verdict(None, ids([]), ids([]), max_unexplained_drop_fraction=1.0).passed
    diff = release_diff(prev, cur.column("SAMPLE_ID").combine_chunks(),
                        pa.table({"sample_id": ids(gone[:4]), "reason": ["removal:iwf"] * 4}))
    assert diff.column_names == ["url_sha256", "SAMPLE_ID", "reason"]
    assert sorted(diff.column("reason").to_pylist()) == ["not_in_build"] * 6 + ["removal:iwf"] * 4
    assert all(len(h) == 64 for h in diff.column("url_sha256").to_pylist())


def test_release_is_readable_by_common_tools(tmp_path: Path, monkeypatch):
    """img2dataset's parquet reader, DuckDB, pyarrow, pandas and Hugging Face datasets (offline)."""
    table = _release_table(7)
    out = tmp_path / "release"
    write_release(table, out, variant=ReleaseVariant("research", 0.95), build={}, rows_per_part=3)
    # img2dataset reader: pq.read_table(columns=[url_col, caption_col, *save_additional_columns]).
    frames = [pq.read_table(p, columns=["URL", "TEXT", "SAMPLE_ID", "sha256"]).to_pandas()
              for p in sorted(out.glob("part-*.parquet"))]
    assert len(frames) == 3 and all(list(df.columns) == ["URL", "TEXT", "SAMPLE_ID", "sha256"] for df in frames)
    assert sum(len(df) for df in frames) == 7
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{out}/part-*.parquet')").fetchall()[0][0] == 7
    import pandas as pd

    assert sum(len(pd.read_parquet(p)) for p in out.glob("part-*.parquet")) == 7
    for k, v in {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}.items():
        monkeypatch.setenv(k, v)
    import datasets

    by_files = datasets.load_dataset("parquet", data_files=str(out / "part-*.parquet"), split="train",
                                     cache_dir=str(tmp_path / "hf-cache"))
    assert by_files.num_rows == 7 and by_files.column_names == RELEASE_SCHEMA.names
    by_card = datasets.load_dataset(str(out), split="train", cache_dir=str(tmp_path / "hf-cache2"))
    assert by_card.num_rows == 7 and sorted(by_card["SAMPLE_ID"]) == sorted(table.column("SAMPLE_ID").to_pylist())
