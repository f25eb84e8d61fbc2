"""WebDataset tar output: `<member>.jpg`, `.txt` (caption), `.json` (metadata) per sample,
`images_per_tar` samples per `{n:05d}.tar`. Thread-safe, and closable from the watchdog: once
closed, late writes are dropped (and their rows are not `ok`)."""

from __future__ import annotations

import io
import json
import tarfile
import threading
import time
from pathlib import Path

import pyarrow as pa

from laion_assets.core.schemas.downloads import TAR_MEMBERS_SCHEMA


def _add(tar: tarfile.TarFile, name: str, data: bytes, mtime: float) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(mtime)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


class TarWriter:
    def __init__(self, out_dir: Path, images_per_tar: int):
        self.out_dir = Path(out_dir)
        self.images_per_tar = images_per_tar
        self.paths: list[Path] = []
        self._tar: tarfile.TarFile | None = None
        self._count = 0
        self._lock = threading.Lock()
        self.closed = False

    def write(self, key: str, jpeg: bytes, caption: str, meta: dict) -> tuple[str, str] | None:
        """Append one sample under member key `key` (`<shard>_<key>`); returns (tar_path relative to
        out_dir, image member) or None if the writer was closed meanwhile."""
        payload = json.dumps(meta, ensure_ascii=False, default=str).encode()
        with self._lock:
            if self.closed:
                return None
            if self._tar is None or self._count >= self.images_per_tar:
                self._roll()
            assert self._tar is not None
            now = time.time()
            _add(self._tar, f"{key}.jpg", jpeg, now)
            _add(self._tar, f"{key}.txt", caption.encode(), now)
            _add(self._tar, f"{key}.json", payload, now)
            self._count += 1
            return self.paths[-1].name, f"{key}.jpg"

    def _roll(self) -> None:
        if self._tar is not None:
            self._tar.close()
        path = self.out_dir / f"{len(self.paths):05d}.tar"
        self._tar = tarfile.open(path, "w", format=tarfile.PAX_FORMAT)
        self.paths.append(path)
        self._count = 0

    def close(self) -> None:
        with self._lock:
            self.closed = True
            if self._tar is not None:
                self._tar.close()
                self._tar = None


def read_samples(tar_path: Path, keys: set[str]) -> dict[str, dict[str, bytes]]:
    """{key: {ext: bytes}} for the wanted keys of one tar (used to carry ok rows into a re-run)."""
    out: dict[str, dict[str, bytes]] = {}
    with tarfile.open(tar_path, "r") as tar:
        for m in tar:
            if not m.isfile():
                continue
            key, _, ext = m.name.rpartition(".")
            if key in keys:
                f = tar.extractfile(m)
                if f is not None:
                    out.setdefault(key, {})[ext] = f.read()
    return out




def list_tar_members(out_dir: Path) -> pa.Table:
    """(tar_path relative to out_dir, member) for every regular file actually present in the tars.
    A tar cut short (crash, full disk) lists only the members that are readable."""
    out_dir = Path(out_dir)
    tar_paths, members = [], []
    for path in sorted(out_dir.glob("*.tar")):
        try:
            with tarfile.open(path, "r") as tar:
                for m in tar:
                    if m.isfile():
                        tar_paths.append(path.name)
                        members.append(m.name)
        except (tarfile.TarError, OSError, EOFError):
            continue  # members read before the damage are already listed
    return pa.table({"tar_path": tar_paths, "member": members}, schema=TAR_MEMBERS_SCHEMA)
