"""The downloader's pre-filter: which URLs a removal entry names, by the rules dbt's removal_matches
uses, and the status rows it writes instead of fetching."""

import hashlib

import duckdb
import pyarrow as pa

from laion_assets.core.download.blocklist import UrlBlocklist, split_removed
from laion_assets.core.download.status import REASONS
from laion_assets.core.removal.entries import REMOVAL_SCHEMA, entry_host, host_sql

URLS = [
    "http://bad.example/a.jpg",            # domain
    "https://cdn.bad.example:8443/b.jpg",  # subdomain of a domain entry
    "http://notbad.example/c.jpg",         # a longer host is not a subdomain
    "http://shop.example/private/d.jpg",   # url_prefix
    "http://other.example/private/d.jpg",  # the same path on another host
    "http://shop.example/public/e.jpg",
    "http://hash.example/f.jpg",           # url_md5
    "http://hash.example/g.jpg",           # url_sha1
    "http://hash.example/h.jpg",           # exact url, listed by two sources
    "http://user@bad.example/i.jpg",       # userinfo does not hide the host
    "not a url",
]


def _entries() -> pa.Table:
    rows = [
        ("domain", "bad.example", "hosts"),
        ("url_prefix", "http://shop.example/private/", "photographer"),
        ("url_md5", hashlib.md5(URLS[6].encode()).hexdigest(), "list-b"),
        ("url_sha1", hashlib.sha1(URLS[7].encode()).hexdigest(), "list-b"),
        ("url", URLS[8], "zz-late"),
        ("url_sha256", hashlib.sha256(URLS[8].encode()).hexdigest(), "list-a"),
        ("image_sha256", "0" * 64, "images"),  # needs the image: never matches a URL
    ]
    return pa.table({"kind": [r[0] for r in rows], "value": [r[1] for r in rows],
                     "source": [r[2] for r in rows], "listed_on": [None] * len(rows),
                     "host": [entry_host(r[0], r[1]) for r in rows]}, schema=REMOVAL_SCHEMA)


def test_sources_follow_the_removal_rules():
    bl = UrlBlocklist(_entries())
    assert [bl.source_for(u) for u in URLS] == [
        "hosts", "hosts", None, "photographer", None, None, "list-b", "list-b", "list-a", "hosts", None]


SPELLINGS = [  # other spellings of removed URLs and hosts, and look-alikes that are not removed
    "HTTP://BAD.EXAMPLE/a.jpg",                     # case of scheme and host
    "http://bad.example./a.jpg",                    # trailing dot
    "http://cdn.bad.example:80/b.jpg",              # explicit default port
    "http://shop.example/%70rivate/d.jpg",          # percent-encoded unreserved path character
    "http://shop．example/private/d.jpg",           # full-width dot
    "http://bücher.example/x.jpg",                  # IDNA in Unicode (listed in punycode)
    "http://xn--bcher-kva.example/y.jpg",
    "http://0x7f.1/z.jpg",                          # IPv4 forms of a listed IP host
    "http://2130706433/z.jpg",
    "http://10.0.0.1/ip.jpg",                       # `0.1` never suffix-matches an IP address
    "http://shop.example/privat/d.jpg",             # not under the prefix
    "http://bad.example.evil/a.jpg",                # a longer host
]


def _spelling_entries() -> pa.Table:
    from laion_assets.core.removal.entries import normalize

    rows = [("domain", "Bad.Example.", "hosts"), ("url_prefix", "http://SHOP.example:80/private/", "photographer"),
            ("domain", "xn--bcher-kva.example", "idn"), ("domain", "127.0.0.1", "ip"), ("domain", "0.1", "ip-frag")]
    return pa.table({"kind": [r[0] for r in rows], "value": [normalize(r[0], r[1]) for r in rows],
                     "source": [r[2] for r in rows], "listed_on": [None] * len(rows),
                     "host": [entry_host(r[0], normalize(r[0], r[1])) for r in rows]}, schema=REMOVAL_SCHEMA)


def test_every_spelling_is_refused_as_the_release_sql_refuses_it():
    """The downloader's Python matcher and the release's SQL (`matches_sql` over the filter stage's
    canonical columns) agree on every spelling: a removed URL is neither fetched nor published."""
    from laion_assets.core.removal.canonical import canonical_columns
    from laion_assets.core.removal.entries import matches_sql

    entries = _spelling_entries()
    bl = UrlBlocklist(entries)
    got = [bl.source_for(u) for u in SPELLINGS]
    assert got == ["hosts", "hosts", "hosts", "photographer", "photographer", "idn", "idn", "ip", "ip",
                   None, None, None]
    curl, chost = canonical_columns(SPELLINGS)
    rows = pa.table({"SAMPLE_ID": list(range(len(SPELLINGS))), "URL": SPELLINGS, "URL_CANONICAL": curl,
                     "HOST_CANONICAL": chost, **{c: pa.nulls(len(SPELLINGS), pa.string())
                                                 for c in ("md5", "sha1", "sha256", "pdq")},
                     "pdq_quality": pa.nulls(len(SPELLINGS), pa.int32())})
    with duckdb.connect() as con:
        con.register("rows_v", rows)
        con.register("entries_v", entries)
        sql = dict(con.sql(f"SELECT SAMPLE_ID, min(source) FROM ({matches_sql('rows_v', 'entries_v', canonical=True)}) "
                           "GROUP BY 1").fetchall())
    assert [sql.get(i) for i in range(len(SPELLINGS))] == got


def test_split_marks_removed_rows_and_keeps_a_previous_removal():
    pairs = pa.table({"key": [f"{i:09d}" for i in range(len(URLS))], "url": URLS})
    previous = pa.table({"key": ["000000005", "000000004"], "url": [URLS[5], "http://changed.example/x.jpg"],
                         "reason": ["removed", "removed"], "error": ["removal:images", "removal:images"]})
    todo, removed = split_removed(pairs, _entries(), previous)
    assert todo["key"].to_pylist() == ["000000002", "000000004", "000000010"]  # 4: its URL changed
    rows = {r["key"]: r for r in removed.to_pylist()}
    assert rows["000000005"]["error"] == "removal:images"  # purged by image hash before
    assert rows["000000000"]["error"] == "removal:hosts"
    assert {(r["status"], r["reason"]) for r in rows.values()} == {("skipped", "removed")}
    assert REASONS["removed"] == "skipped"
    assert all(r["tar_member"] is None and r["sha256"] is None for r in rows.values())


def test_no_entries_fetch_everything():
    pairs = pa.table({"key": ["000000000"], "url": [URLS[0]]})
    todo, removed = split_removed(pairs, REMOVAL_SCHEMA.empty_table())
    assert todo.num_rows == 1 and removed.num_rows == 0
