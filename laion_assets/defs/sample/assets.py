"""`sample_crawl`: the embedded default's own WARC files and images, made locally."""

import json

import dagster as dg

from laion_assets.core.storage.layout import SAMPLE_CRAWL_DIR
from laion_assets.core.sample.crawl import SampleSpec, build_sample_crawl
from laion_assets.core.sample.server import write_token
from laion_assets.defs.sample.resources import SampleImageServerResource
from laion_assets.defs.lib.resources import StorageResource
from laion_assets.defs.lib.validators import ranged



class SampleCrawlConfig(dg.Config):
    pages: int = SampleSpec.pages
    images_per_page: int = SampleSpec.images_per_page
    warc_files: int = SampleSpec.warc_files
    mismatch_ratio: float = SampleSpec.mismatch_ratio
    seed: int = SampleSpec.seed

    _check_pages = ranged("pages", 1, 100_000, integer=True)
    _check_images_per_page = ranged("images_per_page", 1, 1000, integer=True)
    _check_warc_files = ranged("warc_files", 1, 10_000, integer=True)
    _check_mismatch_ratio = ranged("mismatch_ratio", 0.0, 1.0)


@dg.asset(
    group_name="sample",
    kinds={"python", "warc"},
    description="A small crawl made offline: WARC pages whose <img> tags point at images served "
    "on 127.0.0.1, with the pairs a correct pipeline publishes in expected.json.",
)
def sample_crawl(
    context: dg.AssetExecutionContext,
    config: SampleCrawlConfig, storage: StorageResource, sample_image_server: SampleImageServerResource
) -> dg.MaterializeResult:
    st = storage.get()
    spec = SampleSpec(
        pages=config.pages,
        images_per_page=config.images_per_page,
        warc_files=config.warc_files,
        mismatch_ratio=config.mismatch_ratio,
        seed=config.seed,
    )
    with sample_image_server.build_port() as port:  # reserved for this root once the sample is committed
        base_url = f"http://127.0.0.1:{port}"
        wanted = json.dumps({**spec.__dict__, "image_base_url": base_url}, sort_keys=True)
        live = st.live_relpath(SAMPLE_CRAWL_DIR)
        reused = st.exists(f"{live}/spec.json") and st.read_bytes(f"{live}/spec.json").decode() == wanted
        if not reused:
            with st.staging_dir(SAMPLE_CRAWL_DIR) as tmp:
                build_sample_crawl(tmp, base_url, spec)
                write_token(tmp / "images")  # what the image server is recognised by
            live = st.live_relpath(SAMPLE_CRAWL_DIR)
    with sample_image_server.lease() as lease:  # fails now, not at download, if the port is not ours
        context.log.info(f"sample images served on {lease.base_url}")
    expected = json.loads(st.read_bytes(f"{live}/expected.json"))
    warcs = st.list(f"{live}/warc")
    return dg.MaterializeResult(
        metadata={
            "warc_dir": dg.MetadataValue.path(st.uri(f"{live}/warc")),
            "warc_files": len(warcs),
            "pages": spec.pages,
            "expected_release_pairs": len(expected),
            "image_base_url": base_url,
            "reused_existing": reused,
        }
    )
