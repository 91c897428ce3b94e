"""The prover's projection reads step records and declared regions, never names chosen by the
design's author: a copy of the base design with every local variable and parameter renamed and
every step's label reworded still conforms to the base design's per-page encoding."""
from __future__ import annotations

import ast
import inspect
import textwrap

import pytest

from dirtyproof.impl import Config, Geometry
from dirtyproof.impl.designs import base as base_module
from dirtyproof.impl.designs import check_interface
from dirtyproof.proofs.conformance import check_run
from dirtyproof.proofs.encoding import BaseEncoding
from dirtyproof.proofs.registry import encoding_for

KEEP = {"self", "w"}          # the design interface's own receivers


class _Rename(ast.NodeTransformer):
    """Rename every local and parameter (``k`` -> ``k_renamed``...), and give every Step record a
    reworded label (``text=...``)."""

    def __init__(self) -> None:
        self.params_with_defaults: set[str] = set()
        self.reworded = 0

    def visit_FunctionDef(self, node):
        args = node.args
        with_default = args.args[len(args.args) - len(args.defaults):] if args.defaults else []
        self.params_with_defaults |= {a.arg for a in with_default}
        self.generic_visit(node)
        return node

    def _new(self, name: str) -> str:
        return name if name in KEEP or name in self.params_with_defaults else f"{name}_renamed"

    def visit_arg(self, node):
        node.arg = self._new(node.arg)
        return node

    def visit_Name(self, node):
        if isinstance(node.ctx, ast.Store) or node.id in self.locals_:
            node.id = self._new(node.id)
        return node

    def visit_Call(self, node):
        self.generic_visit(node)
        if isinstance(node.func, ast.Name) and node.func.id == "S":
            self.reworded += 1
            node.keywords.append(ast.keyword("text", ast.Constant(f"reworded step {self.reworded}")))
        return node


def _locals_of(tree) -> set[str]:
    """Every name bound inside a function of ``tree`` (parameters, assignments, loop targets)."""
    out: set[str] = set()
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef):
            out |= {a.arg for a in fn.args.args + fn.args.kwonlyargs}
            for n in ast.walk(fn):
                if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
                    out.add(n.id)
    return out - KEEP


def renamed_design():
    """The base Design's source, every local renamed and every label reworded, compiled as a
    subclass of the real Design (it overrides every method with its renamed copy)."""
    src = textwrap.dedent(inspect.getsource(base_module.Design))
    tree = ast.parse(src)
    cls = tree.body[0]
    cls.name = "RenamedLegacy"
    cls.bases = [ast.Name("_RealDesign", ast.Load())]
    tr = _Rename()
    tr.locals_ = _locals_of(cls)
    for stmt in cls.body:
        if isinstance(stmt, ast.Assign) and any(getattr(t, "id", None) == "name" for t in stmt.targets):
            stmt.value = ast.Constant("legacy-renamed")
    tr.visit(tree)
    ast.fix_missing_locations(tree)
    ns = dict(vars(base_module), _RealDesign=base_module.Design)
    exec(compile(tree, "<renamed base design>", "exec"), ns)
    out = ns["RenamedLegacy"]
    out.per_page_encoding = BaseEncoding
    assert tr.reworded >= 15 and len(tr.locals_) >= 20, (tr.reworded, sorted(tr.locals_))
    return check_interface(out)


def test_the_copy_really_renames_and_rewords():
    cls = renamed_design()
    src = inspect.getsource(base_module.Design.cpu_physical_memory_sync_dirty_bitmap)
    assert "for k in range" in src                       # the base's loop variable...
    from dirtyproof.impl import World
    w = World(Config(), cls)
    w.step(["mgmt", "start"])
    assert w.step(["migration", None]).startswith("reworded step")
    assert "k" not in cls.cpu_physical_memory_sync_dirty_bitmap.__code__.co_varnames   # ...is gone


@pytest.mark.parametrize("mode", ["legacy", "manual", "initially_set"])
def test_renamed_and_reworded_copy_conforms_to_the_base_encoding(mode):
    cls = renamed_design()
    enc = encoding_for(cls)
    rep = None
    for geo in (Geometry.simple(aligned=1, unaligned=1, pages=64, shift=2),
                Geometry.simple(aligned=0, unaligned=2, pages=8, shift=1)):
        cfg = Config(geometry=geo, kvm_mode=mode, switchover_pages=4)
        for seed in range(3):
            rep = check_run(cls, cfg, enc, seed, 600, report=rep)
    assert rep.ok, rep.mismatches[:1]
    assert rep.steps > 1000
