"""Plain random runs over seeds, as ``dirtyproof run --design heldout.MOD:Class --seed N --steps 3000
[--kvm-mode M]`` does them (same Config, scheduler and checks), one process, one run at a time.

    PYTHONPATH=. .venv/bin/python -m heldout.measure [--seeds 200] [--steps 3000] [--modes manual,legacy,initially_set] [NAME ...]
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from dirtyproof.impl.config import Config
from dirtyproof.impl.scheduler import RandomScheduler
from dirtyproof.checked import run
from dirtyproof.impl.world import World

from . import HELD_OUT


def sweep(cls, mode: str, seeds: int, steps: int) -> dict:
    hits, props, first = 0, {}, None
    t0 = time.perf_counter()
    for seed in range(seeds):
        cfg = Config(kvm_mode=mode)
        res = run(World(cfg, cls), RandomScheduler(seed, steps, cancels=1), keep_log=False)
        if not res.ok:
            hits += 1
            props[res.violation.invariant] = props.get(res.violation.invariant, 0) + 1
            if first is None:
                first = seed
    return {"design": cls.name, "mode": mode, "seeds": seeds, "hits": hits, "first_seed": first,
            "props": props, "seconds": round(time.perf_counter() - t0, 1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, default=200)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--modes", default="manual,legacy,initially_set")
    p.add_argument("names", nargs="*")
    a = p.parse_args(argv)
    for cls in HELD_OUT:
        if a.names and cls.name not in a.names and cls.__name__ not in a.names:
            continue
        for mode in a.modes.split(","):
            print(json.dumps(sweep(cls, mode, a.seeds, a.steps)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
