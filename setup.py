"""The compiled parts of laion-assets (everything else is in pyproject.toml): extraction's hot loops in C.

- `_tagscan`: htmlscan's tag scan and attribute parse (the same matches as its regex);
- `_langsum`: the caption language model's per-caption feature sums (bit for bit numpy's).

Both are optional: where they cannot be built (no C compiler), extraction takes the Python paths they
mirror (same results, slower), and `laion_assets_tests/core/extract/test_native.py` fails, so a
machine that should have them says so.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "laion_assets.core.extract._tagscan",
            sources=["laion_assets/core/extract/_tagscan.c"],
            depends=["laion_assets/core/extract/_tagscan_impl.h"],
            extra_compile_args=["-O2"],
            optional=True,
        ),
        Extension(
            "laion_assets.core.extract._langsum",
            sources=["laion_assets/core/extract/_langsum.c"],
            # -ffp-contract=off: no fused multiply-add (numpy rounds the product, then the sum)
            extra_compile_args=["-O3", "-ffp-contract=off"],
            optional=True,
        ),
    ]
)
