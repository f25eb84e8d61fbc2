"""The search service and page: `python -m laion_assets.search --root data --port 8080`."""
