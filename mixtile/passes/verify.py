"""The IR verifier: the invariants every pass may rely on, checked in one walk.

- SSA dominance: an operand is a parameter or a value defined earlier in the same or an
  enclosing block (values of a region are not visible outside it);
- result types equal what the op's shape rule infers (tiles: dtype and shape; a space
  the rule fixes, e.g. a load's `space` attr, must match too);
- `for`: iv + one block arg per init, a trailing `yield` of one value per init, and the
  inits, block args, yield operands and results agree in type; `spmd`: one index arg;
  `yield` only as the last op of a `for` body;
- no store/fixpipe into a parameter declared as an input;
- after InferSpaces (kernel.attrs["spaces"]): every tile has a concrete space and each
  unit gets its operands where it reads them (cube: L0A/L0B -> L0C; vector: UB; a
  store, once paths are legal, from UB or L0C);
- after LegalizePaths (kernel.attrs["legal"]) with a target: every load/store/move is
  a data path the target has.
"""
from __future__ import annotations

from mixtile.errors import IllegalPathError, MixtileError, VerifyError
from mixtile.ir.core import Block, Kernel, Op, Value
from mixtile.ir.ops import FOR, SPMD, YIELD
from mixtile.ir.registry import data_path, required_spaces
from mixtile.ir.types import INDEX, MemSpace, Role, ScalarType, TensorType, TileType
from mixtile.passes.legalize_paths import ROUTED
from mixtile.target import Target

S = MemSpace
_MALFORMED = (TypeError, ValueError, KeyError, IndexError, AttributeError)


def verify(kernel: Kernel, target: Target | None = None) -> None:
    """Raise VerifyError (or IllegalPathError) at the first broken invariant."""
    _Verifier(kernel, target).run()


def _vname(v: Value) -> str:
    if v.hint:
        return f"`{v.hint}`"
    if isinstance(v.owner, Op):
        return f"result {v.index} of `{v.owner.name}`"
    if isinstance(v.owner, Block):
        owner = v.owner.parent
        return f"block arg {v.index} of `{owner.name if owner else 'kernel'}`"
    return "a value"


class _Verifier:
    def __init__(self, kernel: Kernel, target: Target | None) -> None:
        self.k = kernel
        self.target = target
        self.spaces = bool(kernel.attrs.get("spaces"))
        self.legal = bool(kernel.attrs.get("legal")) and target is not None
        self.visible: set[Value] = set()
        self.params = {p.value: p for p in kernel.params}

    def fail(self, op: Op | None, msg: str, fix: str | None = None) -> None:
        loc = op.loc if op is not None else None
        where = f"`{op.name}`: " if op is not None else ""
        raise VerifyError(where + msg, loc=loc, fix=fix)

    def run(self) -> None:
        for p in self.k.params:
            if not isinstance(p.value.type, (TensorType, ScalarType)):
                self.fail(None, f"parameter `{p.name}` has type {p.value.type}; parameters "
                          "are GM tensors or scalars")
            self.visible.add(p.value)
        self.block(self.k.body, None)

    # ------------------------------------------------------------ structure

    def block(self, blk: Block, owner: Op | None) -> None:
        visible = self.visible
        added: list[Value] = []
        for a in blk.args:
            self.space_ok(owner, a)
            visible.add(a)
            added.append(a)
        ops = blk.ops
        last = len(ops) - 1
        for i, op in enumerate(ops):
            if op.parent is not blk:
                self.fail(op, "op's parent link does not point at the block holding it",
                          "insert ops with Block.append / builder.insert_before")
            for j, v in enumerate(op.operands):
                if v not in visible:
                    self.fail(op, f"operand {j} ({_vname(v)}) is not defined before this op "
                              "in an enclosing scope (values of a region are not visible "
                              "outside it)")
            if op.opdef is YIELD:
                if owner is None or owner.opdef is not FOR or i != last:
                    self.fail(op, "`yield` may only be the last op of a `for` body")
            else:
                self.check_op(op, owner)
            for r in op.regions:
                if r.parent is not op:
                    self.fail(op, "region's parent link does not point at its op")
                self.block(r, op)
            for v in op.results:
                visible.add(v)
                added.append(v)
        visible.difference_update(added)

    def check_op(self, op: Op, owner: Op | None) -> None:
        d = op.opdef
        if len(op.regions) != d.n_regions:
            self.fail(op, f"has {len(op.regions)} regions; expected {d.n_regions}")
        try:
            inferred = d.infer([v.type for v in op.operands], op.attrs)
        except MixtileError as e:
            raise VerifyError(f"`{op.name}`: {e.message}", loc=op.loc, fix=e.fix) from None
        except _MALFORMED as e:
            self.fail(op, f"malformed op ({type(e).__name__}: {e})")
        if len(inferred) != len(op.results):
            self.fail(op, f"has {len(op.results)} results; its rule gives {len(inferred)}")
        for r, t in zip(op.results, inferred, strict=True):
            if r.owner is not op:
                self.fail(op, f"result {r.index} does not point back at its op")
            if not self.same(r.type, t, fixed_only=True):
                self.fail(op, f"result {r.index} has type {r.type}; operands give {t}")
            self.space_ok(op, r)
        if d is FOR:
            self.check_for(op)
        elif d is SPMD:
            if owner is not None:
                self.fail(op, "`spmd` may only appear in the kernel body")
            args = op.regions[0].args
            if len(args) != 1 or args[0].type != INDEX:
                self.fail(op, f"region has args {[str(a.type) for a in args]}; expected "
                          "one index (the block index)")
        for i in d.writes:
            p = self.params.get(op.operands[i])
            if p is not None and p.role is Role.IN:
                self.fail(op, f"kernel writes input `{p.name}`; mark it mt.Out or mt.InOut",
                          f"declare `{p.name}` as mt.Out (written) or mt.InOut (read and "
                          "written)")
        if self.spaces:
            self.check_units(op)
        if self.legal:
            self.check_path(op)

    def check_for(self, op: Op) -> None:
        body = op.regions[0]
        inits = op.operands[3:]
        if len(body.args) != len(inits) + 1:
            self.fail(op, f"body has {len(body.args)} block args; expected {len(inits) + 1} "
                      "(the iv and one per carried value)")
        if body.args[0].type != INDEX:
            self.fail(op, f"loop iv has type {body.args[0].type}; expected index")
        if not body.ops or body.ops[-1].opdef is not YIELD:
            self.fail(op, "`for` body must end with a `yield` of the carried values")
        ys = body.ops[-1].operands
        if len(ys) != len(inits):
            self.fail(body.ops[-1], f"yields {len(ys)} values for {len(inits)} carried values")
        for i, (x, a, y, r) in enumerate(zip(inits, body.args[1:], ys, op.results, strict=True)):
            ts = (x.type, a.type, y.type, r.type)
            if not all(self.same(s, t) for k, s in enumerate(ts) for t in ts[k + 1:]):
                self.fail(op, f"carried value {i} changes type: init {ts[0]}, block arg "
                          f"{ts[1]}, yield {ts[2]}, result {ts[3]}")

    def same(self, a, b, fixed_only: bool = False) -> bool:
        """Types agree (tiles: dtype and shape; space when both are known, or when the
        kernel has spaces; fixed_only: only when `b` - an inferred type - fixes one)."""
        if type(a) is not TileType or type(b) is not TileType:
            return a == b
        if a.dtype is not b.dtype or a.shape != b.shape:
            return False
        if a.space is b.space:
            return True
        if fixed_only:
            return b.space is S.ANY
        return not self.spaces and S.ANY in (a.space, b.space)

    # ------------------------------------------------------------ spaces and paths

    def space_ok(self, op: Op | None, v: Value) -> None:
        if self.spaces and type(v.type) is TileType and v.type.space in (S.ANY, S.GM):
            self.fail(op, f"{_vname(v)} has no on-chip space ({v.type}) after InferSpaces")

    def want(self, op: Op, v: Value, spaces: tuple[MemSpace, ...], what: str) -> None:
        t = v.type
        if type(t) is TileType and t.space not in spaces:
            names = " or ".join(s.value for s in spaces)
            self.fail(op, f"{what} is in {t.space.value}; it must be in {names}")

    def check_units(self, op: Op) -> None:
        # before LegalizePaths a routed op's operand elsewhere is the user's (an
        # IllegalPathError LegalizePaths reports at the line); after it, the declared spaces
        if op.opdef in ROUTED and not self.k.attrs.get("legal"):
            return
        ins, outs = required_spaces(op)
        for j, (v, want) in enumerate(zip(op.operands, ins)):
            if want:
                self.want(op, v, want, f"operand {j}")
        for j, (v, want) in enumerate(zip(op.results, outs)):
            if want:
                self.want(op, v, want, f"result {j}")

    def check_path(self, op: Op) -> None:
        src_dst = data_path(op)
        if src_dst is None:
            return
        err = self.target.path_error(f"`{op.name}`", *src_dst)
        if err is not None:
            raise IllegalPathError(err[0], loc=op.loc,
                                   fix=err[1] + " (LegalizePaths routes moves it can)")
