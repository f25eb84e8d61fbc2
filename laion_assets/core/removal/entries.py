"""Removal sources: load hash lists and opt-out requests, normalize them, and match rows against them.

A source is a file (local path or `s3://` URI): CSV, parquet, or plain text with one entry per line.
Every entry has a kind (below), a value, the source's name and the date it was listed. Bad entries
are kept aside with a reason (`rejected`), never silently dropped, and never block the good ones.
Hash lists stay hashes: nothing here turns a hash back into a URL, and outputs name removed rows
only by hashes (see `url_sha256`).

Matching lives in SQL so that dbt (the anti-join, `dbt/models/removal_matches.sql`) and the release's
blocking check (`matches_sql` here, an independent second implementation) agree on the same rules:
- url_md5 / url_sha1 / url_sha256: hex digest of the URL's UTF-8 bytes, exactly as published;
- image_md5 / image_sha1 / image_sha256: hex digest of the original image bytes (download status);
- url: the same URL; url_prefix: the URL starts with it; domain: the URL's host is it or a subdomain
  (never for IP addresses: `0.1` does not suffix-match `10.0.0.1`). These three compare canonical
  forms only (`canonical.py`: WHATWG, one spelling per URL and host), computed once per row by the
  filter stage (`url_canonical`, `host_canonical`) and once per entry here (`value`, `host`);
- pdq: 256-bit PDQ hash (64 hex chars); a row matches when its own PDQ hash has quality >= 50 and
  the Hamming distance is <= 31 (REFERENCES.md).
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from laion_assets.core.lib.validation import ConfigError, require_choice, require_int_range
from laion_assets.core.removal.strict_csv import WRONG_FIELDS, SourceRejected, csv_entries
from laion_assets.core.removal.canonical import IP_HOST_PATTERN, canonical_host, canonical_url, is_ip_host

HASH_LENGTHS = {"md5": 32, "sha1": 40, "sha256": 64}
KINDS = (
    "url_md5", "url_sha1", "url_sha256", "image_md5", "image_sha1", "image_sha256",
    "url", "url_prefix", "domain", "pdq",
)
FORMATS = ("auto", "csv", "parquet", "lines")
PDQ_MAX_DISTANCE = 31
PDQ_MIN_QUALITY = 50

REMOVAL_SCHEMA = pa.schema(
    [
        pa.field("kind", pa.string(), nullable=False),
        pa.field("value", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("listed_on", pa.string()),
        # Canonical host of url / url_prefix entries (the value itself for domain entries), else NULL.
        pa.field("host", pa.string()),
    ]
)
REJECTED_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("line", pa.int64()),
        pa.field("kind", pa.string()),
        pa.field("reason", pa.string(), nullable=False),
    ]
)
_HEX = re.compile(r"^[0-9a-f]+$")
_SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_DATE_FORMAT = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class _Date:
    """YYYY-MM-DD that is a real calendar date."""

    @staticmethod
    def match(value: str) -> bool:
        import datetime

        if not _DATE_FORMAT.match(value):
            return False
        try:
            datetime.date.fromisoformat(value)
        except ValueError:
            return False
        return True


_DATE = _Date()


@dataclass(frozen=True)
class RemovalSource:
    """One list to apply. `kind` is required for files without a `kind` column (e.g. plain lines)."""

    name: str
    uri: str
    kind: str | None = None
    listed_on: str | None = None
    format: str = "auto"

    def __post_init__(self) -> None:
        if not _SOURCE_NAME.match(self.name):
            raise ConfigError("removal source name", self.name, "1-64 chars of [A-Za-z0-9._-], starting alnum")
        if self.kind is not None:
            require_choice(f"removal source {self.name} kind", self.kind, KINDS)
        require_choice(f"removal source {self.name} format", self.format, FORMATS)
        if self.listed_on is not None and not _DATE.match(self.listed_on):
            raise ConfigError(f"removal source {self.name} listed_on", self.listed_on, "a date YYYY-MM-DD")


def url_sha256(url: str) -> str:
    """How removed rows are named in diffs and logs: never the URL itself."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()


def normalize(kind: str, raw: str) -> str:
    """The canonical value of an entry, or ValueError saying why it is unusable."""
    value = raw.strip()
    if not value:
        raise ValueError("empty")
    algo = kind.split("_", 1)[1] if kind.startswith(("url_md5", "url_sha", "image_")) else None
    if algo:
        value = value.lower()
        if len(value) != HASH_LENGTHS[algo] or not _HEX.match(value):
            raise ValueError(f"not a {algo} hex digest")
        return value
    if kind == "pdq":
        value = value.lower()
        if len(value) != 64 or not _HEX.match(value):
            raise ValueError("not a 256-bit PDQ hash (64 hex chars)")
        return value
    if kind in ("url", "url_prefix"):
        canonical = canonical_url(value) if re.match(r"^https?://[^/\s?#]+", value, re.I) else None
        if canonical is None:
            raise ValueError("not an absolute http(s) URL")
        return canonical
    if kind == "domain":
        host = canonical_host(value)
        if host is None or not (is_ip_host(host) or re.match(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*$", host)):
            raise ValueError("not a domain name")
        return host
    raise ValueError(f"unknown kind {kind!r}")


def entry_host(kind: str, value: str) -> str | None:
    """The canonical host an entry is matched through (url, url_prefix, domain), else None."""
    if kind == "domain":
        return value
    if kind in ("url", "url_prefix"):
        return canonical_host(value)
    return None


def _read_bytes(uri: str) -> bytes:
    if "://" in uri and not uri.startswith("file://"):
        from pyarrow import fs

        filesystem, path = fs.FileSystem.from_uri(uri)
        with filesystem.open_input_stream(path) as f:
            return f.read()
    return Path(uri.removeprefix("file://")).read_bytes()


def _detect_format(source: RemovalSource, data: bytes) -> str:
    if source.format != "auto":
        return source.format
    if data[:4] == b"PAR1":
        return "parquet"
    if source.uri.endswith(".csv") or source.uri.endswith(".tsv"):
        return "csv"
    return "lines"


def _raw_entries(source: RemovalSource, data: bytes) -> Iterable[tuple[int, str | None, str | None, str | None]]:
    """(line number, kind, value, listed_on) per entry as written in the file."""
    fmt = _detect_format(source, data)
    if fmt == "parquet":
        try:
            table = pq.read_table(io.BytesIO(data))
        except (pa.ArrowException, OSError) as e:
            raise SourceRejected(f"unreadable parquet ({type(e).__name__})") from None
        cols = set(table.column_names)
        if "value" not in cols:
            raise SourceRejected(f"parquet source needs a 'value' column (has {sorted(cols)[:10]})")
        values = table.column("value").to_pylist()
        kinds = table.column("kind").to_pylist() if "kind" in cols else [None] * len(values)
        dates = table.column("listed_on").to_pylist() if "listed_on" in cols else [None] * len(values)
        for i, (k, v, d) in enumerate(zip(kinds, values, dates), start=1):
            yield i, k, v, None if d is None else str(d)
        return
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise SourceRejected(f"not UTF-8 text (bad byte at offset {e.start})") from None
    if fmt == "csv":
        yield from csv_entries(text, delimiter="\t" if source.uri.endswith(".tsv") else ",")
        return
    for i, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if line and not line.startswith("#"):
            yield i, None, line, None


def load_source(source: RemovalSource, data: bytes | None = None) -> tuple[pa.Table, pa.Table]:
    """(entries, rejected) of one source; a missing or unreadable file is an error naming it.

    `data`: the file's bytes when the caller read them (e.g. through the pipeline's storage)."""
    if data is None:
        try:
            data = _read_bytes(source.uri)
        except (OSError, ValueError) as e:
            raise ValueError(f"removal source {source.name}: cannot read {source.uri}: {e}") from e
    entries: dict[tuple[str, str], str | None] = {}
    rejected: list[dict] = []
    for line, kind, value, listed_on in _raw_entries(source, data):
        if kind == WRONG_FIELDS:
            rejected.append({"source": source.name, "line": line, "kind": None, "reason": value})
            continue
        kind = (kind or source.kind or "").strip().lower() or None
        if kind is None:
            rejected.append({"source": source.name, "line": line, "kind": None, "reason": "no kind"})
            continue
        if kind not in KINDS:
            rejected.append({"source": source.name, "line": line, "kind": kind[:32], "reason": "unknown kind"})
            continue
        try:
            norm = normalize(kind, value or "")
        except ValueError as e:
            rejected.append({"source": source.name, "line": line, "kind": kind, "reason": str(e)})
            continue
        date = (listed_on or "").strip() or source.listed_on
        if date is not None and not _DATE.match(date):
            rejected.append({"source": source.name, "line": line, "kind": kind, "reason": "listed_on is not YYYY-MM-DD"})
            continue
        entries.setdefault((kind, norm), date)
    rows = [{"kind": k, "value": v, "source": source.name, "listed_on": d, "host": entry_host(k, v)}
            for (k, v), d in entries.items()]
    rows.sort(key=lambda r: (r["kind"], r["value"]))
    return (
        pa.Table.from_pylist(rows, schema=REMOVAL_SCHEMA),
        pa.Table.from_pylist(rejected, schema=REJECTED_SCHEMA),
    )


def load_removal_list(
    sources: Sequence[RemovalSource], read: Callable[[RemovalSource], bytes | None] | None = None
) -> tuple[pa.Table, pa.Table]:
    """Every source's entries (one row per source, kind and value) and every rejected entry.

    `read(source)` may supply a source's bytes (None: read its URI directly)."""
    names = [s.name for s in sources]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError("removal source names", dupes, "each source needs its own name")
    loaded = [load_source(s, read(s) if read else None) for s in sorted(sources, key=lambda s: s.name)]
    entries = pa.concat_tables([e for e, _ in loaded]) if loaded else REMOVAL_SCHEMA.empty_table()
    rejected = pa.concat_tables([r for _, r in loaded]) if loaded else REJECTED_SCHEMA.empty_table()
    return entries, rejected


def request_source(file_name: str, uri: str) -> RemovalSource | None:
    """A removal request filed as a file, named by its WHOLE file name (`iwf.csv` and `iwf.parquet`
    are two sources, never one overwriting the other).

    `<name>.csv` / `<name>.parquet` carry a `kind` column; `<name>.<kind>.txt` is one entry per line.
    Other files (and hidden ones) are not sources (None). A file whose name or kind is unusable is a
    SourceRejected (the request is refused with that reason; other requests still apply)."""
    if file_name.startswith("."):
        return None
    stem, _, suffix = file_name.rpartition(".")
    if suffix not in ("txt", "csv", "tsv", "parquet"):
        return None
    kind = None
    if suffix == "txt":
        kind = stem.rpartition(".")[2]
        if kind not in KINDS:
            raise SourceRejected(f"unknown kind {kind[:32]!r} in the file name: name it <source>.<kind>.txt, "
                                 f"kind one of {', '.join(KINDS)}")
    if not _SOURCE_NAME.match(file_name):
        raise SourceRejected("file name: 1-64 chars of [A-Za-z0-9._-], starting alnum")
    return RemovalSource(name=file_name, uri=uri, kind=kind, format="lines" if kind else "auto")


def sources_in_dir(directory: Path) -> list[RemovalSource]:
    """Every request file directly under a local folder (see `request_source`)."""
    files = sorted(p for p in directory.glob("*") if p.is_file()) if directory.is_dir() else []
    return [s for p in files if (s := request_source(p.name, str(p))) is not None]


def load_source_isolated(source: RemovalSource, data: bytes | None = None) -> tuple[pa.Table, pa.Table, str | None]:
    """(entries, rejected, None), or (empty, empty, reason) when the whole file is rejected."""
    try:
        entries, rejected = load_source(source, data)
    except SourceRejected as e:
        return REMOVAL_SCHEMA.empty_table(), REJECTED_SCHEMA.empty_table(), str(e)
    return entries, rejected, None


def entry_counts(entries: pa.Table) -> dict[str, dict[str, int]]:
    """{source: {kind: n}}: what the card and run metadata say about the lists (never their values)."""
    out: dict[str, dict[str, int]] = {}
    for s, k in zip(entries.column("source").to_pylist(), entries.column("kind").to_pylist()):
        out.setdefault(s, {}).setdefault(k, 0)
        out[s][k] += 1
    return {s: dict(sorted(v.items())) for s, v in sorted(out.items())}


def pdq_hex(bits: Sequence[int]) -> str:
    """pdqhash.compute's 256 bits (first bit most significant) as 64 lowercase hex chars."""
    if len(bits) != 256:
        raise ValueError(f"a PDQ hash has 256 bits, got {len(bits)}")
    return f"{int(''.join(str(int(b)) for b in bits), 2):064x}"


def pdq_distance(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def pdq_words_sql(col: str) -> list[str]:
    """The 4 UBIGINT words of a 64-hex-char PDQ column, for popcount(xor) distance in DuckDB."""
    return [f"('0x' || substr({col}, {1 + 16 * i}, 16))::UBIGINT" for i in range(4)]


def pdq_distance_sql(a: str, b: str) -> str:
    wa, wb = pdq_words_sql(a), pdq_words_sql(b)
    return " + ".join(f"bit_count(xor({x}, {y}))" for x, y in zip(wa, wb))


PDQ_BANDS = 16  # 16-bit bands of the 256-bit hash


def pdq_matches_sql(rows: str, entries: str, row_cols: Sequence[str], *, pdq_max_distance: int = PDQ_MAX_DISTANCE,
                    pdq_min_quality: int = PDQ_MIN_QUALITY) -> str:
    """SQL selecting (*row_cols, kind, source) for every row of `rows` (columns pdq, pdq_quality)
    within `pdq_max_distance` of a `pdq` entry of `entries`, without comparing every row with every
    entry: by pigeonhole, two hashes within d bits agree to within d // 16 bits on at least one of
    the 16 16-bit bands, so each entry's bands are expanded with every variant of up to d // 16
    flipped bits (1 + 16 for d <= 31), equi-joined with the rows' bands, and only those candidates
    get the full distance. Beyond d = 31 (two flips or more) every pair is compared.
    """
    ids = ", ".join(f"r.{c}" for c in row_cols)
    keep = f"r.pdq IS NOT NULL AND r.pdq_quality >= {pdq_min_quality}"
    full = f"{pdq_distance_sql('r.pdq', 'e.value')} <= {pdq_max_distance}"
    if pdq_max_distance // PDQ_BANDS > 1:
        return (f"SELECT {ids}, e.kind, e.source FROM {rows} r JOIN {entries} e "
                f"ON e.kind = 'pdq' AND {keep} AND {full}")
    flips = "SELECT 0 AS f" + (" UNION ALL SELECT (1 << b) AS f FROM range(16) t(b)"
                               if pdq_max_distance >= PDQ_BANDS else "")
    band = lambda col: f"('0x' || substr({col}, 1 + 4 * band, 4))::INTEGER"  # noqa: E731
    return f"""SELECT {', '.join(row_cols)}, kind, source FROM (
        SELECT DISTINCT {ids}, r.pdq, e.value, e.kind, e.source
        FROM (SELECT r.*, band, {band('r.pdq')} AS v FROM {rows} r, range({PDQ_BANDS}) b(band) WHERE {keep}) r
        JOIN (SELECT e.*, band, xor({band('e.value')}, f) AS v
              FROM {entries} e, range({PDQ_BANDS}) b(band), ({flips}) x WHERE e.kind = 'pdq') e
          USING (band, v)
    ) r WHERE {pdq_distance_sql('r.pdq', 'r.value')} <= {pdq_max_distance}"""


def host_sql(url: str) -> str:
    return f"lower(regexp_extract({url}, '^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/?#]*@)?([^/:?#]+)', 1))"


def not_ip_sql(host: str) -> str:
    """SQL twin of `canonical.is_ip_host` (negated): domain suffixes never apply to IP hosts."""
    return f"NOT regexp_full_match({host}, '{IP_HOST_PATTERN}')"


def matches_sql(rows: str, entries: str, *, canonical: bool = False, pdq_max_distance: int = PDQ_MAX_DISTANCE,
                pdq_min_quality: int = PDQ_MIN_QUALITY) -> str:
    """SQL selecting (SAMPLE_ID, kind, source) for every row of view `rows` matching view `entries`.

    `rows` needs URL, SAMPLE_ID and, where present, sha256/md5/sha1/pdq/pdq_quality (NULL allowed).
    `canonical`: `rows` also has URL_CANONICAL and HOST_CANONICAL (the filter stage's columns, NULL
    allowed: the raw URL and its host then stand in); without them url, url_prefix and domain
    entries (canonical) are compared with the raw URL, which finds the rows already spelt canonically.
    """
    require_int_range("pdq_max_distance", pdq_max_distance, 0, 255)
    require_int_range("pdq_min_quality", pdq_min_quality, 0, 100)
    url = "coalesce(URL_CANONICAL, URL)" if canonical else "URL"
    host = f"coalesce(HOST_CANONICAL, {host_sql('URL')})" if canonical else host_sql("URL")
    eq = {
        "url_md5": "md5(r.URL)", "url_sha1": "sha1(r.URL)", "url_sha256": "sha256(r.URL)",
        "image_md5": "r.md5", "image_sha1": "r.sha1", "image_sha256": "r.sha256",
    }
    parts = [
        f"SELECT r.SAMPLE_ID, e.kind, e.source FROM {rows} r JOIN {entries} e "
        f"ON e.kind = '{kind}' AND e.value = {expr}"
        for kind, expr in eq.items()
    ]
    # URLs, domains and prefixes are matched through the row's canonical URL and host (equi-joins,
    # never rows x entries): a domain entry matches a host or any of its dot-suffixes, expanded once
    # per distinct host that is not an IP address; a prefix entry only rows of its own host.
    wanted = f"EXISTS (SELECT 1 FROM {entries} WHERE kind IN ('url', 'domain', 'url_prefix'))"
    hosted = f"(SELECT SAMPLE_ID, {url} AS curl, {host} AS host FROM {rows} WHERE {wanted})"
    labels = "string_split(h.host, '.')"
    parts.append(f"SELECT r.SAMPLE_ID, e.kind, e.source FROM {hosted} r JOIN {entries} e "
                 f"ON e.kind = 'url' AND e.value = r.curl")
    parts.append(
        f"SELECT r.SAMPLE_ID, b.kind, b.source FROM {hosted} r JOIN ("
        f"SELECT h.host, e.kind, e.source FROM (SELECT host, unnest(CASE WHEN {not_ip_sql('host')} THEN "
        f"list_transform(range(1, len({labels}) + 1), lambda i: array_to_string({labels}[i:], '.')) "
        f"ELSE [host] END) AS suffix FROM (SELECT DISTINCT host FROM {hosted} WHERE host <> '') h) h "
        f"JOIN {entries} e ON e.kind = 'domain' AND e.value = h.suffix) b USING (host)"
    )
    # Lists written before entries had a `host` column: the prefix's own host stands in.
    with_host = f"(SELECT * FROM {entries} UNION ALL BY NAME SELECT NULL::VARCHAR AS host WHERE false)"
    parts.append(
        f"SELECT r.SAMPLE_ID, e.kind, e.source FROM {hosted} r JOIN {with_host} e ON e.kind = 'url_prefix' "
        f"AND coalesce(e.host, {host_sql('e.value')}) = r.host AND starts_with(r.curl, e.value)"
    )
    parts.append(pdq_matches_sql(rows, entries, ["SAMPLE_ID"], pdq_max_distance=pdq_max_distance,
                                 pdq_min_quality=pdq_min_quality))
    return "\nUNION ALL\n".join(parts)
