"""``dirtyproof hunt``: hunt designs (and optionally the mutant corpus): seeded swarm schedules,
then the Hypothesis machine (:func:`dirtyproof.hunt.hunt`).

Exit 0 when every verdict matches its expectation (a design without one, such as a user's class,
is expected to be safe), 1 otherwise, 2 for bad input.
"""
from __future__ import annotations

import sys

from dirtyproof.impl.config import ALL_KVM_MODES, DIRTY_RING

from .common import design_class, positive_int
from .errors import UserError
from .paths import DEFAULT_TRACE_DIR, TRACE_DIR_ENV, trace_dir


def add_arguments(p) -> None:
    """The hunt verb's flags."""
    p.add_argument("--design", metavar="NAME|module:Class|file.py:Class",
                   help="one design, mutant or user class (default: every shipped design)")
    p.add_argument("--mutants", action="store_true", help="also hunt every mutant of the corpus")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--budget", type=positive_int, metavar="SECONDS",
                      help="hunt each design for about this long (rounds of examples, new seeds)")
    size.add_argument("--examples", type=positive_int, metavar="N", help="examples per design")
    p.add_argument("--profile", help="Hypothesis profile: ci, dev or thorough (default: $DIRTYPROOF_PROFILE or ci)")
    p.add_argument("--seed", type=positive_int, help="random seed (default: the profile's; ci is derandomized)")
    p.add_argument("--schedules", type=positive_int, default=None,
                   help="seeded swarm schedules run before the Hypothesis machine, 0 for none "
                        "(default: the profile's: ci 200, dev 500, thorough 5000)")
    p.add_argument("--trace-dir", metavar="DIR", help="where counterexample traces go "
                   f"(default: ${TRACE_DIR_ENV} or {DEFAULT_TRACE_DIR})")
    p.add_argument("--tail", type=positive_int, default=40, help="counterexample steps to print")
    p.add_argument("--free-page-hinting", action="store_true",
                   help="every world's guest hints free pages (virtio-balloon, precopy notifiers); "
                        "expectations from the manifest's hinting section, --mutants hunts its mutants")
    p.add_argument("--kvm-mode", choices=ALL_KVM_MODES,
                   help="with --free-page-hinting: every world in this KVM mode (default: all modes in turn); "
                        "dirty_ring: every world with KVM's dirty ring (expectations from the manifest's "
                        "dirty_ring section, --mutants hunts its mutants)")
    p.add_argument("--dirty-ring-with-bitmap", action="store_true",
                   help="with --kvm-mode dirty_ring: KVM's backup bitmap too (KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP)")


# --free-page-hinting worlds with recorded expectations (the manifest's hinting section)
HINT_WORLDS = {None: "all-modes", "legacy": "legacy-kvm"}


def hint_overrides(args) -> tuple[dict | None, str | None]:
    """The Config overrides of every hunted world, and the manifest's world they are, as
    ``section/world`` (``None``: no recorded expectations for that world)."""
    ring = getattr(args, "kvm_mode", None) == DIRTY_RING
    if getattr(args, "dirty_ring_with_bitmap", False) and not ring:
        raise UserError("--dirty-ring-with-bitmap needs --kvm-mode dirty_ring")
    if not getattr(args, "free_page_hinting", False):
        if ring:
            bitmap = bool(getattr(args, "dirty_ring_with_bitmap", False))
            overrides = {"kvm_mode": DIRTY_RING, **({"dirty_ring_with_bitmap": True} if bitmap else {})}
            return overrides, f"dirty_ring/{'ring-with-bitmap' if bitmap else 'ring'}"
        if getattr(args, "kvm_mode", None):
            raise UserError("--kvm-mode narrows a --free-page-hinting hunt (or is dirty_ring); without it "
                            "the hunt covers every mode")
        return None, None
    overrides = {"free_page_hinting": True}
    if args.kvm_mode:
        overrides["kvm_mode"] = args.kvm_mode
    world = HINT_WORLDS.get(args.kvm_mode)
    return overrides, world and f"hinting/{world}"


def _targets(args, hint_world: str | None = None) -> list[tuple[str, type, dict | None]]:
    """(name, class, manifest entry or None) for every design to hunt."""
    from dirtyproof.impl.designs import DESIGNS
    from dirtyproof.mutants import HINTING_MUTANTS, MUTANTS, RING_MUTANTS, load_manifest

    manifest = load_manifest()
    expected = {**manifest.get("designs", {}), **manifest.get("mutants", {})}
    if getattr(args, "free_page_hinting", False) or getattr(args, "kvm_mode", None) == DIRTY_RING:
        section, _, world = (hint_world or "/").partition("/")
        expected = dict(manifest.get(section, {}).get(world, {})) if hint_world else {}
        # the corpus a hinting or dirty ring hunt goes through (a dirty ring world's: the mutants
        # its manifest world lists, as the backup bitmap's mutant needs the backup bitmap)
        MUTANTS = HINTING_MUTANTS if getattr(args, "free_page_hinting", False) else {
            n: c for n, c in RING_MUTANTS.items() if n in expected}
    if args.design is not None:
        if args.mutants:
            raise UserError("--mutants hunts the whole corpus; it cannot be combined with --design")
        cls = design_class(args.design)
        entry = expected.get(args.design) if (DESIGNS.get(args.design) is cls
                                               or MUTANTS.get(args.design) is cls) else None
        return [(args.design, cls, entry)]
    names = list(DESIGNS) + (list(MUTANTS) if args.mutants else [])
    return [(n, design_class(n), expected.get(n)) for n in names]


def _progress(name: str):
    def show(stats, elapsed):
        sys.stderr.write(f"  [{name}] {elapsed:5.1f} s: {stats.get('schedules', 0)} schedules, "
                         f"{stats.get('examples', 0)} examples, {stats.get('steps', 0)} steps\n")
    return show


def _examples(rep, args) -> str:
    """The machine's runs, said so when they are more than the examples asked for (Hypothesis
    counts only valid examples against ``--examples``; it also runs discarded and shrinking ones)."""
    if args.examples is not None and rep.examples > args.examples:
        return f"{rep.examples} machine runs ({args.examples} valid examples asked)"
    return f"{rep.examples} examples"


def _origin(rep) -> str:
    """Which search found the counterexample, so it can be found again."""
    f = rep.found
    if rep.found_by == "sweep":
        arm = {"swarm": "swarm", "plain": "plain-arm", "preempt": "preemption-arm"}.get(f.sweep_arm, "sweep")
        return f"{arm} schedule {f.sweep_index}" + (f", sweep seed {f.sweep_seed}" if f.sweep_seed else "")
    return f"Hypothesis machine, example {rep.first_failure_examples}"


def run(args) -> int:
    """Hunt every target and print verdicts; 0 when all match expectations."""
    from dirtyproof.hunt import ProfileError, hunt, profile_name

    try:
        profile_name(args.profile)
    except ProfileError as exc:
        raise UserError(str(exc)) from None
    # a hunt that would check nothing is bad input, not a pass
    if args.budget is not None and args.budget <= 0:
        raise UserError("--budget must be at least 1 second (a hunt of no time checks nothing)")
    if args.examples is not None and args.examples <= 0:
        raise UserError("--examples must be at least 1 (0 examples check nothing)")
    if args.tail < 0:
        raise UserError("--tail must be >= 0")
    args.trace_dir = str(trace_dir(args))
    overrides, hint_world = hint_overrides(args)
    targets = _targets(args, hint_world)
    all_ok = True
    for name, cls, entry in targets:
        want = entry["verdict"] if entry else "safe"
        sys.stderr.write(f"hunting {name} ...\n")
        rep = hunt(cls, examples=args.examples, budget=args.budget, profile=args.profile, seed=args.seed,
                   trace_dir=args.trace_dir, progress=_progress(name), schedules=args.schedules,
                   config_overrides=overrides)
        ok = rep.verdict == want
        all_ok &= ok
        line = (f"{name:28s} {rep.verdict:6s} (expected {want}{'' if entry else ', no manifest entry'}) "
                f"{rep.schedules} schedules, {_examples(rep, args)}, {rep.steps} steps, {rep.seconds:.1f} s")
        if rep.found is not None:
            line += f"; caught by {rep.found.invariant} in {rep.found.length} steps ({_origin(rep)})"
            if entry and entry.get("property") and entry["property"] != rep.found.invariant:
                line += f" (manifest expects {entry['property']})"
        print(("ok   " if ok else "FAIL ") + line)
        for r in rep.rules:
            print(f"     {r}")
        f = rep.found
        if f is not None and (not ok or args.design):
            text = str(f).splitlines()
            # the step list is cut to --tail; every other line (rules on the way, the lost write
            # shown by driving on to completion, where the counterexample comes from, the trace) stays
            head = text[:3]
            steps = [t for t in text[3:] if t.startswith("  #")]
            tail = [t for t in text[3:] if not t.startswith("  #")]
            print("\n".join(head))
            if len(steps) > args.tail:
                print(f"  ... {len(steps) - args.tail} earlier steps (all in the trace)")
            print("\n".join(steps[-args.tail:]))
            print("\n".join(tail))
    return 0 if all_ok else 1
