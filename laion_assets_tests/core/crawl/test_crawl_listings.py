"""How crawl listing lines resolve (issue 19): absolute and file:// lines in a local listing, .arc
files in a directory, every other form refused at manifest time naming the line."""

import gzip
from pathlib import Path

import pytest

from laion_assets.core.crawl.manifest import list_source


def listing(tmp_path: Path, lines: list[str]) -> str:
    p = tmp_path / "warc.paths.gz"
    p.write_bytes(gzip.compress("\n".join(lines).encode()))
    return str(p)


def test_local_listing_forms_resolve(tmp_path):
    abs_file = tmp_path / "elsewhere" / "a.warc.gz"
    src = listing(tmp_path, ["crawl-data/X/segments/1/warc/r.warc.gz", str(abs_file), f"file://{abs_file.with_name('b.arc.gz')}",
                             "s3://bucket/c.warc.gz", "https://data.commoncrawl.org/crawl-data/d.warc.gz"])
    files = {f.path: f.uri for f in list_source(src)}
    assert files["crawl-data/X/segments/1/warc/r.warc.gz"] == f"{tmp_path}/crawl-data/X/segments/1/warc/r.warc.gz"
    assert files[str(abs_file)] == str(abs_file)  # was "<dir>//abs/path"
    assert files[str(abs_file.with_name("b.arc.gz"))] == str(abs_file.with_name("b.arc.gz"))
    assert files["s3://bucket/c.warc.gz"] == "s3://bucket/c.warc.gz"
    assert all("//" not in u.split("://")[-1] for u in files.values())


@pytest.mark.parametrize("line, why", [
    ("ftp://host/a.warc.gz", "unsupported form"), ("C:/x/a.warc.gz", "unsupported form"),
    ("crawl-data/../../etc/a.warc.gz", "'..'"), ("crawl-data/a.txt", "is not a"),
    ("file://relative/a.warc.gz", "file://"), ("a b.warc.gz", "spaces"),
])
def test_other_forms_are_refused_naming_the_line(tmp_path, line, why):
    src = listing(tmp_path, ["crawl-data/ok.warc.gz", line])
    with pytest.raises(ValueError) as e:
        list_source(src)
    assert "line 2" in str(e.value) and why in str(e.value)


def test_a_directory_source_includes_arc_files(tmp_path):
    for name in ("a.arc", "b.arc.gz", "c.warc.gz", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert sorted(f.path for f in list_source(str(tmp_path))) == ["a.arc", "b.arc.gz", "c.warc.gz"]
