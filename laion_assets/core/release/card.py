"""The dataset card (README.md) of a release, rendered from its manifest alone.

A Hugging Face YAML header (licence, task categories, size, configs with data_files) lets `datasets`
and the Hub read the folder as-is. Everything in the card comes from manifest.json, which holds no
build time or local path, so rebuilding the same version gives a byte-identical card.
"""

from __future__ import annotations

from typing import Any


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows] or ["| " + " | ".join("-" for _ in header) + " |"]
    return "\n".join(lines)


def _yaml_header(m: dict[str, Any]) -> str:
    variant = m["variant"]["name"]
    return f"""---
license: other
license_name: mixed-web-content
pretty_name: laion-assets {variant} {m['version']}
task_categories:
- text-to-image
- image-to-text
- zero-shot-image-classification
language:
- multilingual
size_categories:
- {m['size_category']}
tags:
- image-text-pairs
- common-crawl
- clip
configs:
- config_name: default
  data_files:
  - split: train
    path: "part-*.parquet"
---
"""


def _semantic_section(m: dict[str, Any]) -> str:
    """The paragraph on semantic dedup (core/release/semantic.py); empty when the variant has it off."""
    s = m.get("semantic_dedup")
    if not s:
        return ""
    return (f"\n## Semantic duplicates removed\nImages whose CLIP embedding has cosine similarity >= "
            f"{s['min_cosine']} with a better-scored row of the same k-means cluster ({s['clusters']} clusters, "
            f"seed {s['seed']}) were dropped as `semantic_duplicate`: **{s['dropped']}** of {s['rows_compared']} "
            f"rows compared ({s['rows_not_compared']} without a stored embedding were kept). `{s['file']}` "
            "lists each dropped row with the kept row it duplicates.\n")


def dataset_card(m: dict[str, Any]) -> str:
    variant = m["variant"]
    funnel = m.get("funnel", {"pairs_extracted": m["rows"], "dropped": {}})
    removal = m.get("removal", {"sources": {}, "rows_removed": 0})
    filters = m.get("filters", {})
    link_rot = m.get("link_rot", {"pairs": 0, "failed": 0, "share": 0.0, "by_reason": {}})
    columns = _table(("column", "type", "description"),
                     [(f"`{c['name']}`", c["type"], c["description"]) for c in m["columns"]])
    thresholds = _table(("model_id", "weights_id", "language", "threshold", "rows"),
                        [(t["model_id"], t["weights_id"], t["language"], t["threshold"], t["rows"]) for t in m["thresholds"]])
    drops = _table(("reason", "pairs"), [(f"`{r}`", n) for r, n in funnel["dropped"].items()])
    sources = _table(("source", "entries", "rows removed", "entries by kind", "listed on"),
                     [(name, s["entries"], s["rows_removed"],
                       ", ".join(f"{k}: {n}" for k, n in s["kinds"].items()), s.get("listed_on") or "-")
                      for name, s in removal["sources"].items()])
    requests = removal.get("requests", [])
    request_rows = _table(("request (receipt id)", "file", "status", "entries accepted", "entries rejected", "rows removed"),
                          [(f"`{r['request_id']}`", r["file"], r["status"] + (f": {r['reason']}" if r.get("reason") else ""),
                            r["entries_accepted"], r["entries_rejected"], r["rows_removed"]) for r in requests])
    rot = _table(("reason", "share of pairs"), [(f"`{r}`", f"{v:.2%}") for r, v in link_rot["by_reason"].items()])
    crawls = _table(("crawl", "rows"), list(m["rows_by_crawl"].items()))
    langs = _table(("language", "rows"), list(m["rows_by_language"].items())[:20])
    scorers = ", ".join(f"`{k}` ({v} rows)" for k, v in m.get("punsafe_sources", {}).items()) or "none"
    return f"""{_yaml_header(m)}
# laion-assets {variant['name']} release {m['version']}

Image-text pairs (URLs and captions, never the images) extracted from web crawls, kept when a CLIP
model scores the image and its caption as similar. Columns follow LAION's (`URL`, `TEXT`, `WIDTH`,
`HEIGHT`, `similarity`, ...), so img2dataset, clip-retrieval, DuckDB, pandas and Hugging Face
`datasets` read it unchanged. Every row names the WARC record it came from (`crawl`, `warc_path`,
`warc_offset`, `page_url`).

- rows: **{m['rows']}**
- variant: `{variant['name']}` (rows with `punsafe` over {variant['punsafe_max']} removed)
- files: {len(m['files'])} parquet part(s); sizes and sha256 checksums in `manifest.json`
- version: `{m['version']}`, a hash of the variant name and every row (see "Versions" below)

## Download the images

```bash
img2dataset --url_list . --input_format parquet --url_col URL --caption_col TEXT \\
  --save_additional_columns '["SAMPLE_ID","similarity","LICENSE"]' \\
  --verify_hash '["sha256","sha256"]' --output_format webdataset --output_folder images \\
  --image_size 256 --resize_mode keep_ratio --processes_count 16 --thread_count 64
```

## Columns
{columns}

The image hash carried is `sha256` (hex of the original bytes). MD5 and SHA-1 of the same bytes and
PDQ perceptual hashes were used for matching removal lists but are not published.

## Model and thresholds
`similarity` is the cosine similarity of the CLIP image and caption embeddings. A threshold belongs
to the model that produced the scores; the rows were kept at or over:

{thresholds}

## How the rows were chosen
Of **{funnel['pairs_extracted']}** `<img alt>` pairs extracted, **{m['rows']}** are published; every
other pair was dropped for exactly one reason (the first rule it failed), so the table adds up:

{drops}

Rules, in order: page or image opt-outs (robots.txt, X-Robots-Tag noai/noimageai/noml, TDMRep,
page meta) -> image not downloaded -> not scored -> similarity under threshold -> removal lists ->
placeholder images (one image behind {filters.get('placeholder_min_urls', '?')} or more URLs) ->
duplicate (URL, TEXT) and duplicate image sha256 across every crawl (highest similarity kept) ->
the variant's NSFW policy.

## Removal lists applied
{removal['rows_removed']} rows matched a removal entry and were removed. Hash lists stay hashes:
no entry is ever turned back into a URL. PDQ matches use Hamming distance <=
{filters.get('pdq_max_distance', 31)} on images whose PDQ quality is >= {filters.get('pdq_min_quality', 50)}.

{sources}

### Removal requests this version was built with
{len(requests)} filed request(s). Each has a receipt (`removal/receipts/<id>.json` of the build, and
`removal/receipts.parquet`) saying when it was filed and when it landed in which version; rejected
requests applied nothing (their reason is given; rejected entries are counted, never shown). Rows
removed are counted before the variant's NSFW policy.

{request_rows if requests else "No removal request was filed."}
{_semantic_section(m)}
## NSFW policy and its limits
This variant removes rows whose `punsafe` is over {variant['punsafe_max']}. `punsafe` came from:
{scorers}. A `zero_shot:` source means the probability comes from comparing the image embedding with
generic "unsafe" and "safe" text prompts: a heuristic with unmeasured error rates on this data, not
a trained classifier. `NSFW` is always the zero-shot tag. Neither is a guarantee: unsafe images can
remain, and links can start serving different content after publication.

## Link rot at build time
{link_rot['failed']} of {link_rot['pairs']} pairs ({link_rot['share']:.2%}) had an image that could not be
downloaded when the release was built; expect more to fail later.

{rot}

## Rows by crawl
{crawls}

## Rows by caption language (top 20)
`LANGUAGE` is published only where the caption's language id is reliable (py3langid probability
>= 0.5 and >= 10 characters); other rows have no language (LAION's "nolang", shown as None here).

{langs}

## Intended use
Research on image-text models and datasets: training and evaluating CLIP-style models, studying
web data. Not for products that identify people, not for training models to generate content about
real people without consent, and not as a source of "safe" content.

## Limitations
Alt text is written for accessibility and SEO, not as a caption; it can be wrong, promotional or
offensive. Similarity thresholds keep pairs a model *agrees* with, inheriting its biases. Languages
are detected from short texts and can be wrong. {m.get('rows_with_license', 0)} of {m['rows']} rows carry a
page-declared licence; images remain their owners' and this dataset only links to them.

## Removal requests
To have a URL, a domain, a URL prefix or an image removed from every future release, file a removal
request (on the dataset's issue tracker or with its publisher) giving the URL (or its sha256), the
image's sha256, sha1 or md5, or the domain; hash lists (MD5/SHA/PDQ) are accepted as files. The operator
files it under `removal/requests/` of the build (one source per list: a name and a date) and runs
`publish_job`, or lets `removal_requests_sensor` run it. Every release is re-derived from the
stored shards with all sources applied (no re-download, no re-scoring), published as a **new
version**, and a diff next to it (`../diffs/<old>__<new>.parquet`) lists the removed rows by
`url_sha256` and `SAMPLE_ID` with the reason, so holders of an older copy can remove them too
(rows removed by hash lists are listed among unchanged rows, without the list's name). Every
earlier version that held a removed row is withdrawn: its parts are deleted and its
`WITHDRAWN.json` names the version that replaces it.

## Versions
`{m['version']}` hashes the variant name, the schema and every row's published columns (rows sorted by
`SAMPLE_ID`); it depends on no build time, place or fetch time. The same rows always give the same
version, manifest.json and README.md byte for byte.

## Citation
```bibtex
@misc{{laion_assets_{variant['name'].replace('-', '_')}_{m['version'].replace('-', '_')},
  title  = {{laion-assets {variant['name']} release {m['version']}}},
  author = {{laion-assets contributors}},
  note   = {{Image-text pairs from Common Crawl, filtered with CLIP; see manifest.json}},
}}
```
Please also cite LAION-5B (Schuhmann et al., NeurIPS 2022 Datasets and Benchmarks).
"""
