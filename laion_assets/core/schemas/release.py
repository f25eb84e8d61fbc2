"""Schema of a published release: LAION's columns first, then provenance, model and safety fields.

Existing tools read it unchanged (img2dataset `--url_col URL --caption_col TEXT`, clip-retrieval,
Hugging Face `datasets`). `sha256` is the hex SHA-256 of the original image bytes (DataComp's name;
LAION's `hash` column meant a URL+TEXT join key, so we do not reuse that name). Nothing here depends
on where or when the release was built: no fetch times, no local paths, no shard numbers.
"""

import pyarrow as pa

RELEASE_COLUMNS: dict[str, tuple[pa.DataType, bool, str]] = {
    "SAMPLE_ID": (pa.int64(), False, "Stable id of the (URL, TEXT) pair: first 63 bits of sha256(URL + NUL + TEXT)."),
    "URL": (pa.string(), False, "Image URL as found in the page (absolute http/https)."),
    "TEXT": (pa.string(), False, "The <img> alt text, cleaned (the caption)."),
    "HEIGHT": (pa.int32(), True, "Height in pixels of the original image when it was downloaded."),
    "WIDTH": (pa.int32(), True, "Width in pixels of the original image when it was downloaded."),
    "LICENSE": (pa.string(), True, "Licence the page declared (e.g. a Creative Commons URL), or null when none was found."),
    "NSFW": (pa.string(), True, "Zero-shot CLIP tag UNLIKELY / UNSURE / NSFW (a heuristic, not a trained classifier)."),
    "punsafe": (pa.float32(), True, "Probability of unsafe content: zero-shot prompts, or a trained head (see punsafe_source)."),
    "similarity": (pa.float32(), False, "Cosine similarity of the image and caption embeddings of model_id."),
    "LANGUAGE": (pa.string(), True, "Detected caption language (ISO 639), only where the detection is reliable; null when unknown or unreliable (LAION's nolang)."),
    "sha256": (pa.string(), True, "Hex SHA-256 of the original image bytes (img2dataset --verify_hash '[\"sha256\",\"sha256\"]')."),
    "crawl": (pa.string(), False, "Crawl the pair came from (e.g. CC-MAIN-2024-22)."),
    "warc_path": (pa.string(), False, "The crawl's own path of the WARC file (crawl-data/... or source URI)."),
    "warc_offset": (pa.int64(), False, "Byte offset of the page's WARC record in that file."),
    "page_url": (pa.string(), False, "URL of the page the <img> was on."),
    "model_id": (pa.string(), True, "CLIP model that produced similarity (open_clip name)."),
    "weights_id": (pa.string(), True, "Identity of that model's weights (pretrained tag or checkpoint hash)."),
    "threshold": (pa.float32(), True, "Similarity threshold this row had to reach."),
    "punsafe_source": (pa.string(), True, "What produced punsafe: zero_shot:<model> or head:<name>@<checkpoint hash>."),
}

RELEASE_SCHEMA = pa.schema(
    [pa.field(name, typ, nullable=nullable) for name, (typ, nullable, _) in RELEASE_COLUMNS.items()]
)
