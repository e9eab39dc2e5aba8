"""Which of numpy's SIMD loop families this machine runs: the goldens of bit-level tests are kept per family.

numpy picks its elementwise loops (exp, log, tanh, power, sums ...) at run time from the CPU: on an
AVX-512 machine it runs other code than on an AVX2 one (SVML-based transcendentals, wider
reductions), and the last bits of a result differ. OpenBLAS is pinned to one kernel family by
tests/conftest.py; numpy's loops cannot be pinned upward, so a test that compares exact bytes with a
recorded digest keeps one digest per family, each recorded from the same code.
"""

from __future__ import annotations

import numpy as np


def simd_family() -> str:
    """``avx512``, ``avx2`` or ``other``: the widest x86 family among numpy's current loops.

    The names are numpy's dispatch targets: numpy >= 2.4 calls them X86_V4 / X86_V3, earlier
    releases AVX512_SKX / AVX2 and FMA3.
    """
    targets = {v["current"] for func in np.lib.introspect.opt_func_info().values() for v in func.values()}
    if any("AVX512" in t or "X86_V4" in t for t in targets):
        return "avx512"
    if any("AVX2" in t or "FMA3" in t or "X86_V3" in t for t in targets):
        return "avx2"
    return "other"
