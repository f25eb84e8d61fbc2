"""Serve the search page and API over a data root's search indices (127.0.0.1 unless told).

    python -m laion_assets.search --root data --port 8080 [--build]

The query model is the pipeline's (LAION_CLIP_MODEL / LAION_CLIP_PRETRAINED, else the profile's
default: the tiny checkpoint in the embedded profile); it must be the model the release was scored
with. `--build` first builds the index of every published variant that has none yet.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

from laion_assets.settings import load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=load_settings().root)
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default loopback only)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--build", action="store_true", help="build missing indices of published releases first")
    parser.add_argument("--blur-punsafe-over", type=float, default=None,
                        help="blur thumbnails of rows with punsafe over this (and every NSFW-tagged row)")
    parser.add_argument("--clip-model", default=None)
    parser.add_argument("--clip-pretrained", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    from laion_assets.core.search import layout
    from laion_assets.core.search.build import publish_index, release_variants
    from laion_assets.core.search.encode import QueryEncoder
    from laion_assets.core.search.service import DEFAULT_BLUR_PUNSAFE_OVER, SearchService
    from laion_assets.core.storage.local import LocalStorage
    from laion_assets.search.server import serve

    settings = load_settings(overrides={"LAION_ASSETS_ROOT": os.path.abspath(args.root)})
    st = LocalStorage(os.path.abspath(args.root))
    if args.build:
        for variant, version in release_variants(st).items():
            if not st.exists(f"{layout.index_dir(variant, version)}/{layout.MANIFEST}"):
                print(f"building the index of {variant}/{version} ...", flush=True)
                publish_index(st, variant, version)
    encoder = QueryEncoder(args.clip_model or settings.clip_model, args.clip_pretrained or settings.clip_pretrained)
    blur = DEFAULT_BLUR_PUNSAFE_OVER if args.blur_punsafe_over is None else args.blur_punsafe_over
    try:
        service = SearchService(st, encoder, blur_punsafe_over=blur)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    httpd = serve(service, args.host, args.port)
    host, port = httpd.server_address[:2]
    names = ", ".join(f"{r.variant}/{r.version} ({len(r.sample_ids)} rows)" for r in service.releases.values())
    print(f"search: http://{host}:{port}/  releases: {names}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        httpd.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
