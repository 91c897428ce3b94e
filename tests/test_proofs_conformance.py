"""The per-page encoding agrees with the reference model (the executable truth) step by step."""
import pytest

from dirtyproof.cli.main import geometry_named
from dirtyproof.impl import Config
from dirtyproof.impl.designs import DESIGNS
from dirtyproof.proofs.conformance import check_run
from dirtyproof.proofs.designs import BackgroundV1Encoding, BaseEncoding
from dirtyproof.proofs.registry import encoding_for


@pytest.mark.parametrize("design", list(DESIGNS))
@pytest.mark.parametrize("mode", ["legacy", "manual", "initially_set"])
def test_encoding_admits_every_real_step(design, mode):
    rep = None
    for geo in ("mixed", "aligned"):
        cfg = Config(geometry=geometry_named(geo, 2), kvm_mode=mode)
        rep = check_run(DESIGNS[design], cfg, encoding_for(DESIGNS[design]), 0, 250, report=rep)
    assert rep.checked > 2000
    assert rep.ok, rep.mismatches[:2]


def test_conformance_catches_a_wrong_encoding():
    class WrongXchg(BaseEncoding):
        def xchg_updates(self, s):
            return {}
    rep = check_run(DESIGNS["legacy"], Config(), WrongXchg(), 0, 300)
    assert not rep.ok


def test_conformance_catches_a_wrong_design_delta():
    class NoShadow(BackgroundV1Encoding):
        def slow_pre(self, s):
            return {}
    rep = None
    rep = check_run(DESIGNS["background-v1"], Config(kvm_mode="legacy"), NoShadow(), 0, 2000, pages=6)
    assert not rep.ok


def _checked_stepper(w, enc):
    """``(step, bad)``: ``step(choice)`` takes one choice on ``w`` and checks the projection of
    its first three pages against ``enc``'s rules; ``bad`` collects the mismatches (choice, page)."""
    from dirtyproof.proofs.conformance import actor_of, step_successors
    from dirtyproof.proofs.project import project

    rules, bad = enc.rules(), []

    def step(choice):
        before = {q: project(w, q) for q in w.guest_pages[:3]}
        w.step(choice)
        for q, b in before.items():
            succ = step_successors(rules, b, actor_of(choice), choice[1] if choice[0] == "mgmt" else None)
            if tuple(sorted(project(w, q).items())) not in succ:
                bad.append((choice, q))
    return step, bad


def _window_schedule_conforms(enc) -> list:
    """Legacy, one block: start, switch over, run the completion to its BQL release, cancel
    there, run the attempt to its end; every step's projection of every page checked against
    ``enc``. Returns the mismatches (choice, page)."""
    from dirtyproof.impl import World

    w = World(Config(geometry=geometry_named("aligned", 2)), DESIGNS["legacy"])
    step, bad = _checked_stepper(w, enc)

    step(["mgmt", "start"])
    step(["mgmt", "switchover"])
    for _ in range(3000):
        a = w.actors["migration"]
        if a.step is not None and a.step.kind == "stream_complete":
            break
        step(["migration", None] if w.runnable(a) else [next(n for n in w.runnable_threads()), None])
    assert w.can_cancel()
    step(["mgmt", "cancel"])
    while not w.actors["migration"].done:
        step(["migration", None])
    assert w.mig.phase == "cancelled"
    return bad


def test_the_encoding_has_the_cancel_window_after_the_completion_dropped_the_bql():
    """The model's cancel between the completion's BQL release and migration_completion_end
    projects onto the encoding's rules (mgmt.cancel at M_FINISH, then no completion_end); an
    encoding without that window rejects the cancel step."""
    from dirtyproof.proofs.dual import AND, IN, NOT
    from dirtyproof.proofs.encoding import Rule
    from dirtyproof.proofs.state import P_ACTIVE, P_SETUP

    assert _window_schedule_conforms(BaseEncoding()) == []

    class NoWindow(BaseEncoding):
        def rules(self):
            out = []
            for r in super().rules():
                if (r.actor, r.name) == ("mgmt", "cancel"):
                    r = Rule("mgmt", "cancel", True, (), lambda s, f: (AND(
                        s["mpc"] != 0, IN(s["phase"], (P_SETUP, P_ACTIVE)), NOT(s["creq"])), dict(creq=True)))
                out.append(r)
            return out
    bad = _window_schedule_conforms(NoWindow())
    assert bad and all(c == ["mgmt", "cancel"] for c, _ in bad), bad


def _iterate_window_schedule_conforms(enc) -> list:
    """Legacy, one block: start, a write so that the exact sync does not complete, the migration
    thread on to its step "wait for bitmap_mutex" after that sync's bql_unlock, cancel there, run
    the attempt to its end; every step's projection of every page checked against ``enc``.
    Returns the mismatches (choice, page)."""
    from dirtyproof.impl import World

    w = World(Config(geometry=geometry_named("aligned", 2), switchover_pages=0), DESIGNS["legacy"])
    step, bad = _checked_stepper(w, enc)

    from dirtyproof.impl.steps import ITERATE_DONE, WAIT

    step(["mgmt", "start"])
    a = w.actors["migration"]
    exact = False
    for _ in range(3000):
        if exact and a.step is not None and a.step.kind == WAIT and a.step.lock == "bitmap_mutex" \
                and a.blocked_on is None:
            break
        if a.step is not None and a.step.kind == ITERATE_DONE:
            step(["vcpu0", 1])          # the next exact sync finds a page: the iteration goes on
        step(["migration" if w.runnable(a) else w.runnable_threads()[0], None])
        exact = exact or "ram_state_pending_exact" in [r.name for r in a.regions]
    else:
        raise AssertionError("the migration thread never waited for bitmap_mutex after an exact sync")
    assert w.can_cancel() and a.held == ()
    step(["mgmt", "cancel"])
    while not a.done:
        step(["migration" if w.runnable(a) else w.runnable_threads()[0], None])
    assert w.mig.phase == "cancelled"
    return bad


def test_the_encoding_lets_a_cancel_come_while_the_thread_waits_to_iterate():
    """A cancel that comes while the migration thread waits for bitmap_mutex between the exact
    sync and ram_save_iterate (a step of its own) does not stop the send round it has started:
    the encoding's ``iterate`` is enabled with a cancel requested; an encoding that tests the
    cancel there rejects the thread's next step."""
    from dirtyproof.proofs.dual import AND, NOT
    from dirtyproof.proofs.encoding import Rule
    from dirtyproof.proofs.state import M_SEND, M_TOP, MK_EXACT, S_ENTER

    assert _iterate_window_schedule_conforms(BaseEncoding()) == []

    class CancelStopsIterate(BaseEncoding):
        def rules(self):
            out = []
            for r in super().rules():
                if (r.actor, r.name) == ("migration", "iterate"):
                    r = Rule("migration", "iterate", False, (), lambda s, f, enc=self: (
                        AND(s["mpc"] == M_TOP, NOT(s["creq"]), NOT(enc.sync_mutex(s))),
                        dict(mpc=M_SEND, mk=MK_EXACT, ss=S_ENTER)))
                out.append(r)
            return out
    bad = _iterate_window_schedule_conforms(CancelStopsIterate())
    assert bad and all(c == ["migration", None] for c, _ in bad), bad
