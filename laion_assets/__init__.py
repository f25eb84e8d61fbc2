"""laion-assets: LAION-style image-text datasets from Common Crawl, orchestrated by Dagster."""

import os as _os

# numpy's OpenBLAS starts one thread per core when numpy is imported, and each spins for 2^28 cycles
# (~0.1 s) before it sleeps: ~0.1 s of CPU per extra core in every process that imports numpy (an
# extraction or download worker, a Dagster step), for no work (measured in docs/extraction.md, fifth
# round). 2^4 cycles lets them sleep at once; a BLAS call still uses every thread (it wakes them). Set
# before anything here imports numpy; a value the user set is kept. This sets a library default and
# reads no setting (laion_assets/settings.py reads those).
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
