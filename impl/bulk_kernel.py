"""The per-word loop of a fast-path block's bulk sync, fused into one compiled pass (numba).

With numpy alone, each word of a fast-path block goes through about nine ufunc passes (copy,
or, not, and, bitwise_count, sum, or, fill, ...). :func:`fused_words` does the same work in one
loop that reads each layer once and writes it once. numba is an optional dependency (the
``fast`` extra): :func:`kernel` returns the compiled loop, or ``None`` when numba is not
installed, and :mod:`dirtyproof.impl.bulk` then keeps its numpy path.

numba is imported, and the loop compiled, on first use only, so importing the model stays
cheap. The compiled code is cached on disk (``cache=True``) where numba finds a writeable
place; where it finds none the loop is compiled uncached, once per process.
"""
from __future__ import annotations

import numpy as np

# SWAR popcount masks. LLVM recognises this idiom as a population count and, in a loop, turns
# it into popcnt or a vectorised nibble-table count; numba (0.68) cannot compile np.bitwise_count.
_M1 = np.uint64(0x5555555555555555)
_M2 = np.uint64(0x3333333333333333)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)
_S1, _S2, _S4, _S56 = np.uint64(1), np.uint64(2), np.uint64(4), np.uint64(56)


def fused_words(L1, L1c, L2, prot, bmap, base, a, b, logging, legacy):
    """For words [a, b) of a fast-path block whose first page is word ``base`` of the
    world-wide layers: the GET (only when ``logging``: ``L1c = L1``, and with ``legacy`` also
    ``protected |= L1c; L1 = 0``), ``L2 |= L1c``, then the exchange of L2 into ``bmap``
    (``bmap |= L2; L2 = 0``). Returns the number of ``bmap`` bits newly set, as an unsigned
    64-bit integer. ``bmap`` is indexed block-relative, the other layers world-wide.

    Written for numba to compile (:func:`kernel`); plain Python would be slow."""
    # Slices first: an index that starts at 0 is known non-negative, so numba drops its
    # negative-index wraparound, which otherwise keeps LLVM from vectorising the loop.
    l1, l1c, l2 = L1[base + a:base + b], L1c[base + a:base + b], L2[base + a:base + b]
    pr, bm = prot[base + a:base + b], bmap[a:b]
    n = np.uint64(0)                                  # uint64 throughout: int64 would mix to float
    for i in range(bm.shape[0]):                      # the mode tests are hoisted out by LLVM
        if logging:                                   # KVM_GET_DIRTY_LOG
            c = l1[i]
            l1c[i] = c
            if legacy:
                pr[i] |= c
                l1[i] = 0
        else:
            c = l1c[i]
        new = l2[i] | c                               # OR into L2
        old = bm[i]                                   # xchg into bmap, count the new bits
        x = new & ~old
        x = x - ((x >> _S1) & _M1)
        x = (x & _M2) + ((x >> _S2) & _M2)
        n += (((x + (x >> _S4)) & _M4) * _H01) >> _S56
        bm[i] = old | new
        l2[i] = 0
    return n


_UNSET = object()
_kernel = _UNSET


def kernel():
    """The compiled :func:`fused_words`, or ``None`` when numba cannot be imported. The first call
    imports numba; numba compiles the loop on the kernel's own first call."""
    global _kernel
    if _kernel is _UNSET:
        try:
            import numba
        except ImportError:
            _kernel = None
        else:
            try:
                _kernel = numba.njit(cache=True, nogil=True)(fused_words)
            except RuntimeError:                      # no writeable cache location: compile uncached
                _kernel = numba.njit(nogil=True)(fused_words)
    return _kernel


__all__ = ["fused_words", "kernel"]
