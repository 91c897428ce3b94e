"""Counting invariants: ``migration_dirty_pages`` is the popcount of ``bmap`` and the period
counter counts new bits, proved for every size.

Each step changes the counter by what it reports: the fast path adds ``popcount(bits & ~old)``
per 64-bit word, the slow path adds 1 per newly set page, the sender subtracts 1 per cleared bit.
Proved with Z3:
1. chunk lemma (bit-vectors, 8 bits): ``popcount(old | bits) = popcount(old) + popcount(bits & ~old)``;
2. word lemma (integers): a 64-bit word is 8 chunks and popcount is additive over them;
3. induction over the number of words: if the counter equals the popcount of n words and one
   more word is synced by (1)+(2), it equals the popcount of n+1 words (base: 0 words, 0 pages);
4. the slow path and the sender are the 1-bit case of (1).
So the equality holds for every number of pages and blocks.
5. the period counter: ``num_dirty_pages_period`` equals the truth the world keeps (the growth of
   ``bmap`` over each ``bitmap_mutex`` section, counted when positive) at every release. A sync
   section adds ``d_w = popcount(bits & ~old)`` per word to the counter and, by (1)-(2), grows
   ``bmap`` by the same ``d_w >= 0``; a send section only clears bits (truth and counter unchanged);
   a new period resets both. Proved over integers for any number of words per section.
"""
from __future__ import annotations

import time

import z3

from .solver import QueryRunner


def popcount(x, width: int):
    """Popcount of a bit-vector as an integer term."""
    return z3.Sum([z3.ZeroExt(8, z3.Extract(i, i, x)) for i in range(width)]) if width else 0


def _pc_int(x, width):
    return z3.BV2Int(popcount(x, width))


def prove_counting(runner: QueryRunner) -> list[tuple[str, str, float]]:
    """The four lemmas: (name, status of the negation, seconds); ``unsat`` means proved."""
    out = []
    # 1. chunk lemma
    old, bits = z3.BitVec("old", 8), z3.BitVec("bits", 8)
    t = time.perf_counter()
    r = runner.check("counting/chunk-lemma",
                     _pc_int(old | bits, 8) != _pc_int(old, 8) + _pc_int(bits & ~old, 8))
    out.append(("chunk lemma (8 bits)", r.status, time.perf_counter() - t))
    # 2. word = 8 chunks, additivity (uninterpreted chunk popcounts satisfying the chunk lemma)
    t = time.perf_counter()
    o = [z3.Int(f"o{i}") for i in range(8)]
    n = [z3.Int(f"n{i}") for i in range(8)]
    d = [z3.Int(f"d{i}") for i in range(8)]
    hyp = [z3.And(n[i] == o[i] + d[i], d[i] >= 0) for i in range(8)]
    r = runner.check("counting/word-additivity", *hyp, z3.Sum(n) != z3.Sum(o) + z3.Sum(d))
    out.append(("word lemma (8 chunks)", r.status, time.perf_counter() - t))
    # 3. induction over words
    t = time.perf_counter()
    count, popn, popn1, dw = z3.Ints("count popn popn1 dw")
    base = runner.check("counting/induction-base", z3.IntVal(0) != z3.IntVal(0))
    step = runner.check("counting/induction-step", count == popn, popn1 == popn + dw,
                        count + dw != popn1)
    out.append(("induction over words", "unsat" if base.status == step.status == "unsat" else
                (step.status if step.status != "unsat" else base.status), time.perf_counter() - t))
    # 4. one bit: test-and-set / test-and-clear count exactly the change
    t = time.perf_counter()
    b, was = z3.Bools("b was")
    c0 = z3.Int("c0")
    inc = z3.If(z3.And(b, z3.Not(was)), 1, 0)
    r1 = runner.check("counting/one-bit-set", z3.If(z3.Or(was, b), 1, 0) != z3.If(was, 1, 0) + inc)
    r2 = runner.check("counting/one-bit-clear", z3.If(was, c0 - 1, c0) - c0 != 0 - z3.If(was, 1, 0))
    out.append(("one bit (slow path, sender)", "unsat" if r1.status == r2.status == "unsat" else "sat",
                time.perf_counter() - t))
    out.append(period_counter(runner))
    return out


def _period_step(counter_added):
    """Negation of "counter == truth is kept by one sync section, one send section and a reset",
    for a section of symbolic size: ``d`` is the sum of per-word new bits (lemmas 1-2)."""
    P, T, pop, d, k, raw = z3.Ints("P T pop d k raw")
    grown = d                                        # bmap growth of a sync section, by lemmas 1-2
    sync_ok = (P + counter_added(d, raw)) == (T + z3.If(grown > 0, grown, 0))
    send_ok = P == T + z3.If(-k > 0, -k, 0)          # a send section shrinks bmap by k >= 0
    return [P == T, d >= 0, k >= 0, raw >= d, z3.Not(z3.And(sync_ok, send_ok))]


def period_counter(runner: QueryRunner) -> tuple[str, str, float]:
    """Lemma 5: the period counter equals the new bmap bits of the period's syncs."""
    t = time.perf_counter()
    r = runner.check("counting/period-counter", *_period_step(lambda d, raw: d))
    return ("period counter (sync, send, reset)", r.status, time.perf_counter() - t)


def broken_period_counter(runner: QueryRunner) -> str:
    """Non-vacuity of lemma 5: a counter adding ``popcount(bits)`` (``raw >= d``) is refuted."""
    return runner.check("counting/broken-period-counter", *_period_step(lambda d, raw: raw)).status


def broken_count_query(runner: QueryRunner):
    """The query refuting a count of ``popcount(bits)`` instead of ``popcount(bits & ~old)`` (8 bits):
    (its result, the ``old`` and ``bits`` variables, for reading a model)."""
    old, bits = z3.BitVec("old", 8), z3.BitVec("bits", 8)
    r = runner.check("counting/broken-count", _pc_int(old | bits, 8) != _pc_int(old, 8) + _pc_int(bits, 8))
    return r, old, bits


def broken_counting(runner: QueryRunner) -> str:
    """Non-vacuity: counting ``popcount(bits)`` instead of ``popcount(bits & ~old)`` is refuted."""
    return broken_count_query(runner)[0].status
