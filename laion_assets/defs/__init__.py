"""Dagster objects: thin assets, checks and resources over `laion_assets.core`."""
