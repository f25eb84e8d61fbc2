"""Stable identifiers shared by every stage (the downloader's sample .json, the release, the diff)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sample_id(url: str, text: str) -> int:
    """Stable positive int64 id of a (URL, TEXT) pair: the same pair has the same id in every release."""
    digest = hashlib.sha256(url.encode() + b"\x00" + text.encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def sample_id_sql(url: str, text: str) -> str:
    """DuckDB twin of `sample_id` over SQL expressions (dbt's `sample_id` macro is the same SQL)."""
    return f"((('0x' || substr(sha256({url} || chr(0) || {text}), 1, 16))::UBIGINT >> 1)::BIGINT)"


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks (release parts, checkpoints)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
