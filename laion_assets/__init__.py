"""laion-assets: LAION-style image-text datasets from Common Crawl, orchestrated by Dagster."""
