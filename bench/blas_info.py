"""Which BLAS kernel NumPy runs, for the benchmarks' JSON lines.

Some machines force ``OPENBLAS_CORETYPE`` (e.g. ``Haswell`` on an AVX-512
CPU, for older OpenBLAS builds); a current NumPy then runs slower kernels than
it would pick itself. Each benchmark reports the kernel it ran with, so that
figures measured under different settings are never compared by mistake.
"""
from __future__ import annotations

import os


def blas_info() -> dict:
    """``{"blas": "openblas SkylakeX", "blas_threads": 1, "openblas_coretype_env": None}`` (best effort)."""
    info = {"blas": "unknown (threadpoolctl not installed)", "blas_threads": None,
            "openblas_coretype_env": os.environ.get("OPENBLAS_CORETYPE")}
    try:
        import numpy  # noqa: F401  (loads the BLAS library threadpoolctl inspects)
        from threadpoolctl import threadpool_info
    except ImportError:
        return info
    libs = [lib for lib in threadpool_info() if lib.get("user_api") == "blas"]
    # NumPy's own copy: once PyTorch is imported (the peers' runs) its bundled BLAS is listed too
    ours = [lib for lib in libs if "numpy" in lib.get("filepath", "")] or libs
    if ours:
        lib = ours[0]
        info["blas"] = f"{lib.get('internal_api')} {lib.get('architecture', '')}".strip()
        info["blas_threads"] = lib.get("num_threads")
    return info
