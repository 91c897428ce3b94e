"""Conformance of the per-page encoding with the reference model: run real worlds, project every
page onto the abstract state before and after each real step, and check that the encoding admits
exactly that successor (a path of silent rules of the stepping actor ending in a yielding one)."""
from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field

from dirtyproof.impl.scheduler import RandomScheduler
from dirtyproof.impl.world import ModelError, World

from .encoding import successor
from .project import normalize, project

MAX_SILENT = 8


def actor_of(choice) -> str:
    """The encoding's actor name of a concrete choice."""
    who = choice[0]
    return "vcpu" if who.startswith("vcpu") else who


def _fact_values(rule):
    return [dict(zip(rule.facts, vals)) for vals in itertools.product((False, True), repeat=len(rule.facts))]


def step_successors(rules, s: dict, actor: str, arg=None) -> set:
    """Every normalized abstract state one concrete step of ``actor`` can lead to from ``s``."""
    mine = [r for r in rules if r.actor == actor]
    if actor == "mgmt":
        mine = [r for r in mine if r.name == arg]
    out, frontier, seen = set(), [s], set()
    for _ in range(MAX_SILENT + 1):
        nxt = []
        for st in frontier:
            for r in mine:
                for f in _fact_values(r):
                    g, upd = r.fn(st, f)
                    if not g:
                        continue
                    t = successor(st, upd)
                    key = tuple(sorted(normalize(t).items()))
                    if r.yields:
                        out.add(key)
                    elif key not in seen:
                        seen.add(key)
                        nxt.append(t)
        frontier = nxt
        if not frontier:
            break
    return out


@dataclass
class ConformanceReport:
    """Counts of checked (page, step) pairs and the first mismatches."""

    checked: int = 0
    steps: int = 0
    mismatches: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every checked step was admitted."""
        return not self.mismatches


def check_run(design_cls, config, enc, seed: int, steps: int, pages: int = 3, report=None,
              max_mismatches: int = 5) -> ConformanceReport:
    """Run one seeded random schedule and check every step on a few pages (always the hot ones)."""
    rep = report or ConformanceReport()
    rules = enc.rules()
    # an encoding whose design has steps the base projection does not know projects itself
    proj = getattr(enc, "project", None) or project
    w = World(config, design_cls)
    sched = RandomScheduler(seed, steps, cancels=1, hot_pages=pages)
    rng = random.Random(seed)
    pages_all = [p for rb in w.blocks for p in (rb.offset, rb.offset + rb.pages - 1)]
    watch = sorted(set(rng.sample(w.guest_pages, min(pages, len(w.guest_pages))) + rng.sample(pages_all, 2)))
    sched.hot = watch
    limit = steps * 50 + 5000
    cache: dict = {}
    for _ in range(limit):
        choice = sched.next_choice(w)
        if choice is None:
            break
        before = {q: proj(w, q) for q in watch}
        try:
            w.step(choice)
        except ModelError:
            break
        rep.steps += 1
        for q in watch:
            after = tuple(sorted(proj(w, q).items()))
            key = (tuple(sorted(before[q].items())), actor_of(choice), choice[1] if choice[0] == "mgmt" else None)
            succ = cache.get(key)
            if succ is None:      # abstract states repeat a lot: evaluate each (state, actor) once
                succ = cache[key] = step_successors(rules, before[q], key[1], key[2])
            rep.checked += 1
            if after not in succ:
                if len(rep.mismatches) < max_mismatches:
                    rep.mismatches.append((seed, rep.steps, choice, q, before[q], dict(after), w.actors.get(
                        choice[0]).label if choice[0] in w.actors else ""))
    return rep
