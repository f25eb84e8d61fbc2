"""Looking inside a release before the world does: k-NN search over its stored CLIP embeddings,
"find my images" by embedding and PDQ, semantic dedup, takedown expansion and audit queries.

No Dagster import here (the asset is defs/search/assets.py; the HTTP service laion_assets/search/).
"""
