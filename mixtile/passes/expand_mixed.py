"""ExpandMixedKernel: split a launch holding cube and vector work into per-core programs.

Automatic mode, for a cube result consumed by vector work (a GEMM with an epilogue the
L0C writeback cannot do). After LegalizePaths, such a value crosses through a per-core
GM workspace (A2/A3 have no L0C->UB path): a `store` from L0C and a `load` into UB.
This pass rewrites the launch

    spmd(G) { body(blk) }

into a persistent launch of min(G, clusters) blocks, each running its share of the blocks
on one cluster:

    spmd(min(G, C)) ^(c):
      core AIC          { for blk in range(c, G, C): cube ops; wait_flag(FREE);
                          store ws[slot]; fence; set_flag(READY -> AIV)
                          ...; wait_flag(FREE) (drain) }
      core AIV ^(lane): { set_flag(FREE -> AIC) (credit);
                          for blk in range(c, G, C): wait_flag(READY); load my half of
                          ws[slot]; set_flag(FREE -> AIC); vector ops on my half }

Each crossing has a ring of `pipeline_depth` slots per cluster (slot = c * depth + the
iteration's index modulo depth). A crossing made once per block iteration takes the slots
in turn and gets `depth` FREE credits: the producer runs up to depth crossings ahead, its
k-th write ordered after the consumer's (k - depth)-th read of the same slot. A crossing
inside an inner loop (whose index restarts) gets one credit: the producer runs at most
one crossing ahead, its k-th write ordered after the consumer's (k-1)-th read whatever
the slot (FREE from the AIVs counts once both lanes set it). A block never waits on another
cluster. Loops holding both kinds of work run on both sides with each side's carried
values; a vector->cube crossing is the mirror image.
The vector program is split UP_DOWN: every 2-d tile with the crossing tile's row count R
keeps R/2 rows per lane (lane 0 the first half); GM regions move by lane * R/2 rows.
A launch holding a syncall keeps its grid (every block resident). A launch whose cube
and vector phases meet only through GM (a workspace and a MIX syncall, no tile crossing)
is expanded too, without flags or a split: its vector phase must divide the rows between
the lanes itself (`split_aiv`), else an UnsupportedError. Not in this version:
more crossings than the target has flag ids for (2 each); an UnsupportedError.
"""
from __future__ import annotations

import math

from mixtile.errors import FlagOverflowError, TraceError, UnsupportedError
from mixtile.ir.builder import make_op
from mixtile.ir.core import Block, Kernel, Op, Value
from mixtile.ir.ops import (
    ADD,
    CONST,
    CORE,
    DIM,
    FENCE,
    FOR,
    LOAD,
    RESHAPE,
    SADD,
    SET_FLAG,
    SFLOORDIV,
    SMIN,
    SMOD,
    SMUL,
    SPLIT_AIV,
    SPMD,
    SSUB,
    STORE,
    SYNCALL,
    WAIT_FLAG,
    YIELD,
)
from mixtile.ir.registry import LaneSplit, OpDef
from mixtile.ir.types import (
    INDEX,
    CoreRole,
    CoreType,
    DType,
    MemSpace,
    Role,
    SplitMode,
    TensorType,
    TileType,
)
from mixtile.passes.classify_cores import core_of

AIC, AIV, NONE = CoreType.AIC, CoreType.AIV, CoreType.NONE
_ROLE = {AIC: CoreRole.AIC, AIV: CoreRole.AIV}


def _side(op: Op) -> CoreType:
    """AIC, AIV, NONE (scalar), or MIX for a loop holding both kinds of work."""
    if op.opdef is CORE:  # a hand-written region (mt.on_core)
        return op.attrs["core"]
    if not op.regions:
        return core_of(op)
    sides = {_side(o) for r in op.regions for o in r.ops} - {NONE}
    if len(sides) > 1 or CoreType.MIX in sides:
        return CoreType.MIX
    return sides.pop() if sides else NONE


def _value_side(v: Value) -> CoreType:
    t = v.type
    if isinstance(t, TileType):
        return AIV if t.space is MemSpace.UB else AIC
    return NONE


def _routes(kernel: Kernel) -> set[Value]:
    """The GM workspaces LegalizePaths made for cube<->vector routes."""
    names = set(kernel.attrs.get("gm_routes", ()))
    return {p.value for p in kernel.params if p.role is Role.SCRATCH and p.name in names}


def _const(kernel: Kernel, value: int) -> Value:
    op = make_op(CONST, [], {"dtype": DType.I64, "value": value})
    op.parent = kernel.body
    kernel.body.ops.insert(0, op)
    return op.result


def _emit(blk: Block, opdef: OpDef, operands, attrs=None, loc=None) -> Op:
    kw = {"loc": loc} if loc is not None else {}
    op = make_op(opdef, list(operands), attrs or {}, **kw)
    blk.append(op)
    return op


def _check_user_flags(body: Block, reserved: int, target) -> None:
    """Hand-written flags: ids clear of the generated crossings' and within the target's,
    and no flag set more often than the hardware counts (Target.flag_limit) without a
    wait."""
    n_ids = target.flag_ids
    for core in (o for o in body.walk() if o.opdef is CORE):
        for op in core.regions[0].walk():
            if op.opdef in (SET_FLAG, WAIT_FLAG) and op.attrs["flag"] >= n_ids:
                raise TraceError(f"flag {op.attrs['flag']}: this target has flag ids "
                                 f"0..{n_ids - 1}", loc=op.loc,
                                 fix=f"use flag ids {reserved}..{n_ids - 1}")
            if op.opdef in (SET_FLAG, WAIT_FLAG) and op.attrs["flag"] < reserved:
                raise TraceError(
                    f"flag {op.attrs['flag']} is used by this launch's cube<->vector "
                    f"crossings (flags 0..{reserved - 1})", loc=op.loc,
                    fix=f"use flag ids {reserved}..{n_ids - 1} in hand-written regions")
        _check_flag_runs(core.regions[0], target.flag_limit)


def _check_flag_runs(blk: Block, limit: int) -> None:
    run: dict[tuple, int] = {}
    for op in blk.ops:
        if op.opdef is WAIT_FLAG:
            run.clear()
        elif op.opdef is SET_FLAG:
            key = (op.attrs["flag"], op.attrs["to"])
            run[key] = run.get(key, 0) + 1
            if run[key] > limit:
                raise FlagOverflowError(
                    f"set_flag({op.attrs['flag']}) to {op.attrs['to'].value} {limit + 1} times "
                    f"with no wait_flag between: the counter holds {limit} and the chip "
                    "freezes", loc=op.loc,
                    fix="wait for the consumer (a reverse flag) before setting again")
        elif op.opdef is FOR:
            inner = op.regions[0]
            sets = [o for o in inner.walk() if o.opdef is SET_FLAG]
            waits = any(o.opdef is WAIT_FLAG for o in inner.walk())
            trips = _trip_count(op)
            if sets and not waits and (trips is None or trips > limit):
                raise FlagOverflowError(
                    f"this loop sets flag {sets[0].attrs['flag']} every iteration and never "
                    f"waits; with {'an unknown number of' if trips is None else trips} "
                    f"iterations the counter passes {limit} and the chip freezes",
                    loc=sets[0].loc,
                    fix="wait on a reverse flag from the consumer inside the loop")
            _check_flag_runs(inner, limit)
        for r in op.regions if op.opdef is not FOR else ():
            _check_flag_runs(r, limit)


def _trip_count(loop: Op) -> int | None:
    vals = []
    for v in loop.operands[:3]:
        if v.op is None or v.op.opdef is not CONST:
            return None
        vals.append(v.op.attrs["value"])
    lb, ub, st = vals
    return max(0, -(-(ub - lb) // st)) if st > 0 else None


class _Crossing:
    """One value moved between the cube and the vector side through a GM slot."""

    def __init__(self, ws: Value, store: Op, flag: int) -> None:
        self.ws, self.store, self.flag = ws, store, flag  # flag: READY; flag + 1: FREE
        self.producer = AIC if store.operands[1].type.space is MemSpace.L0C else AIV
        self.consumer = AIV if self.producer is AIC else AIC
        self.credits = 1  # FREE credits: the ring depth where the slots advance by one


class _Expander:
    def __init__(self, kernel: Kernel, spmd: Op, target) -> None:
        self.k, self.spmd, self.t = kernel, spmd, target
        self.body = spmd.regions[0]
        ws = _routes(kernel)
        stores = [op for op in self.body.walk() if op.opdef is STORE and op.operands[0] in ws]
        most = target.flag_ids // 2  # READY and FREE per crossing
        if len(stores) > most:
            raise UnsupportedError(
                f"{len(stores)} cube<->vector crossings in one launch need "
                f"{2 * len(stores)} cross-core flag ids; {target.name} has {target.flag_ids}",
                loc=stores[most].loc, fix="cross fewer values (e.g. merge tiles) per launch")
        self.cross = {op.operands[0]: _Crossing(op.operands[0], op, 2 * i)
                      for i, op in enumerate(stores)}
        if spmd.attrs.get("manual"):  # split_aiv(UP_DOWN) written: crossings are explicit
            for op in stores:
                if not op.attrs.get("explicit"):
                    v = op.operands[1]
                    raise TraceError(
                        f"this launch is in manual mode (it has a split_aiv region) but a "
                        f"{v.type.space.value} tile crosses to the "
                        f"{'vector' if v.type.space is MemSpace.L0C else 'cube'} side "
                        "implicitly here", loc=op.loc,
                        fix="mark the crossing: mt.aiv_shard(cube_result) / "
                            "mt.aic_gather(vector_tile), or drop split_aiv (automatic mode)")
        self.mode = spmd.attrs.get("split", SplitMode.UP_DOWN)
        self.axis = 1 if self.mode is SplitMode.LEFT_RIGHT else 0
        extents = {op.operands[1].type.shape[self.axis] for op in stores}
        _check_user_flags(self.body, 2 * len(stores), target)
        if not stores:  # hand-written regions, or phases through GM: nothing to split
            self.E = self.h = None
            self._check_lanes_divided()
            return
        if len(extents) != 1:
            raise UnsupportedError(
                f"tiles crossing between cube and vector have different extents "
                f"{sorted(extents)} on the axis split {self.mode.name}; the split needs one",
                loc=stores[0].loc)
        self.E = extents.pop()
        self.h = (self.E + 1) // 2  # odd: lane 0 takes the ceiling half

    def _check_lanes_divided(self) -> None:
        """Without a crossing there is no tile to split between the AIV lanes: vector work
        outside split_aiv / on_core would run whole on both lanes of every cluster."""
        def walk(ops):
            for op in ops:
                if op.opdef in (SPLIT_AIV, CORE):
                    continue
                if not op.regions and core_of(op) is AIV:
                    yield op
                for r in op.regions:
                    yield from walk(r.ops)

        op = next(walk(self.body.ops), None)
        if op is not None:
            raise UnsupportedError(
                f"vector work ({op.name}) outside split_aiv / on_core in a launch whose cube "
                "and vector work meet only through GM (a syncall) or in hand-written core "
                "regions: no cube->vector tile to split between the two AIV lanes of a "
                "cluster, so both would do all of it", loc=op.loc,
                fix="divide the vector phase between the lanes: `with mt.split_aiv(2, "
                    "mode=mt.SplitMode.NONE) as lane:` and give each lane its rows")

    def run(self) -> None:
        k, t = self.k, self.t
        clusters = _const(k, t.clusters)
        grid = self.spmd.operands[0]
        # a persistent launch (min(G, C) blocks looping over the G) unless a barrier needs
        # every block resident: then the grid stays G (one iteration per block)
        has_sync = any(o.opdef is SYNCALL for o in self.body.walk())
        top = k.body
        launch = grid
        if not has_sync:
            gp = make_op(SMIN, [grid, clusters], loc=self.spmd.loc)
            gp.parent = top
            top.ops.insert(top.ops.index(self.spmd), gp)
            launch = gp.result
        self.depth = depth = self.k.attrs.get("_depth", 2)
        self.depth_v = _const(k, depth)
        reserved = dict(k.attrs.get("ring_bytes", {}))
        for p in k.params:  # a ring of `depth` slots per cluster
            if p.value in self.cross:
                ty = p.value.type
                p.value.type = TensorType(ty.dtype, (t.clusters * depth, *ty.shape[1:]))
                space = self.cross[p.value].store.attrs.get("ring")
                if space is not None:  # on chip (A5): the consumer's memory holds the ring
                    nbytes = depth * ty.dtype.itemsize * math.prod(ty.shape[1:])
                    if self.cross[p.value].consumer is AIV and self.E:  # a lane's share
                        nbytes = nbytes * self.h // self.E
                    reserved[space] = reserved.get(space, 0) + nbytes
        if reserved:
            k.attrs["ring_bytes"] = reserved
        nb = Block([INDEX], ["c"])
        self.c = nb.args[0]
        for side in (AIC, AIV):
            region = Block([INDEX], ["lane"]) if side is AIV else Block()
            body = self._loop(region, self.c, grid, clusters)
            split = None
            self.lane = region.args[0] if side is AIV else None
            if side is AIV and self.E is not None:
                half = _const(k, self.h)
                lo = _emit(body, SMUL, [region.args[0], half]).result
                split = _Split(self.axis, self.E, self.h, lo)
            self.block_iv = body.args[0]
            self._clone_ops(self.body.ops, body, side, {self.body.args[0]: body.args[0]}, split,
                            (body.args[0], self.c, clusters))
            _emit(body, YIELD, [])
            loop_op = region.ops.pop()  # put the credits before the loop, drains after it
            for x in self.cross.values():
                if x.consumer is side:  # the producer may run `credits` crossings ahead
                    for _ in range(x.credits):
                        _emit(region, SET_FLAG, [], {"flag": x.flag + 1,
                                                       "to": _ROLE[x.producer]},
                              loc=x.store.loc)
            region.append(loop_op)
            for x in self.cross.values():
                if x.producer is side:  # take back the credits: counters end at zero
                    for _ in range(x.credits):
                        _emit(region, WAIT_FLAG, [], {"flag": x.flag + 1}, loc=x.store.loc)
            nb.append(make_op(CORE, [], {"core": side}, [region], self.spmd.loc))
        new_spmd = make_op(SPMD, [launch], regions=[nb], loc=self.spmd.loc)
        new_spmd.parent = top
        top.ops[top.ops.index(self.spmd)] = new_spmd

    def _clone_ops(self, ops: list[Op], dst: Block, side: CoreType, vmap: dict, split,
                   loop: tuple[Value, Value, Value]) -> None:
        """Clone the ops of `side` (and scalar ops) into dst, adding the crossing protocol:
        the producer waits FREE before it writes a slot, stores, fences and sets READY;
        the consumer waits READY, loads and sets FREE. `loop` is the innermost enclosing
        loop's (iv, lb, step) in the new program: its iteration parity picks the ring slot."""
        for op in ops:
            if op.opdef is YIELD:
                kept = [v for i, v in enumerate(op.operands) if self._keep_carry(op, i, side)]
                _emit(dst, YIELD, [vmap.get(v, v) for v in kept], loc=op.loc)
                continue
            s = _side(op)
            if s not in (side, NONE, CoreType.MIX):
                continue
            if op.opdef is CORE:  # hand-written: inline on its own core type only
                if op.attrs["core"] is side:
                    if side is AIV:
                        vmap[op.regions[0].args[0]] = self.lane
                    self._clone_ops(op.regions[0].ops, dst, side, vmap, None, loop)
                continue
            if op.opdef is SPLIT_AIV:
                if s not in (AIV, NONE):
                    raise UnsupportedError("a cube op inside a split_aiv region: the region "
                                           "is vector work on the two AIV lanes", loc=op.loc,
                                           fix="move the matmul out of the region")
                if side is AIV:  # inline, the region's lane id is this AIV's lane
                    vmap[op.regions[0].args[0]] = self.lane
                    self._clone_ops(op.regions[0].ops, dst, side, vmap, None, loop)
                continue
            if op.opdef is FOR and (s is CoreType.MIX or any(
                    o.opdef in (SPLIT_AIV, CORE) or o.opdef in (LOAD, STORE)
                    and o.operands[0] in self.cross for o in op.regions[0].walk())):
                self._clone_loop(op, dst, side, vmap, split)
                continue
            x = self.cross.get(op.operands[0]) if op.opdef in (LOAD, STORE) and \
                op.operands else None
            if x is None:
                self._clone(dst, op, vmap, split)
                continue
            slot = self._slot(dst, loop)
            if loop[0] is self.block_iv:
                # one crossing per block iteration: consecutive crossings take consecutive
                # slots, so the producer may fill all `depth` of them before the consumer
                # frees the oldest (nested in an inner loop, the slot index restarts with
                # it and two crossings in a row can share a slot: one credit)
                x.credits = self.depth
            if op.opdef is STORE:
                _emit(dst, WAIT_FLAG, [], {"flag": x.flag + 1}, loc=op.loc)
                new = self._clone(dst, op, vmap, split)
                new.operands[2] = slot
                _emit(dst, FENCE, [], loc=op.loc)
                _emit(dst, SET_FLAG, [], {"flag": x.flag, "to": _ROLE[x.consumer]},
                      loc=op.loc)
            else:
                _emit(dst, WAIT_FLAG, [], {"flag": x.flag}, loc=op.loc)
                new = self._clone(dst, op, vmap, split)
                new.operands[1] = slot
                _emit(dst, SET_FLAG, [], {"flag": x.flag + 1, "to": _ROLE[x.producer]},
                      loc=op.loc)

    def _slot(self, dst: Block, loop) -> Value:
        """This cluster's ring slot for the current iteration: c * depth + parity."""
        if self.depth == 1:
            return self.c
        iv, lb, step = loop
        d = _emit(dst, SSUB, [iv, lb]).result
        q = _emit(dst, SFLOORDIV, [d, step]).result
        par = _emit(dst, SMOD, [q, self.depth_v]).result
        base = _emit(dst, SMUL, [self.c, self.depth_v]).result
        return _emit(dst, SADD, [base, par]).result

    @staticmethod
    def _carry_side(loop: Op, i: int) -> CoreType:
        return _value_side(loop.results[i])

    def _keep_carry(self, yield_op: Op, i: int, side: CoreType) -> bool:
        loop = yield_op.parent.parent
        return self._carry_side(loop, i) in (side, NONE)

    def _clone_loop(self, op: Op, dst: Block, side: CoreType, vmap: dict, split) -> None:
        """A loop with cube and vector work: each side runs the same iterations with the
        carried values of its own side (and the scalar ones)."""
        keep = [i for i in range(len(op.results)) if self._carry_side(op, i) in (side, NONE)]
        operands = [vmap.get(v, v) for v in op.operands[:3]]
        operands += [vmap.get(op.operands[3 + i], op.operands[3 + i]) for i in keep]
        body = op.regions[0]
        nb = Block([INDEX] + [v.type for v in operands[3:]],
                   [body.args[0].hint] + [body.args[1 + i].hint for i in keep])
        vmap[body.args[0]] = nb.args[0]
        for j, i in enumerate(keep):
            vmap[body.args[1 + i]] = nb.args[1 + j]
        self._clone_ops(body.ops, nb, side, vmap, split, (nb.args[0], operands[0], operands[2]))
        new = make_op(op.opdef, operands, dict(op.attrs), [nb], op.loc)
        for j, i in enumerate(keep):
            new.results[j].type = nb.args[1 + j].type
            vmap[op.results[i]] = new.results[j]
        dst.append(new)

    def _loop(self, region: Block, c: Value, grid: Value, step: Value) -> Block:
        body = Block([INDEX], ["blk"])
        region.append(make_op(FOR, [c, grid, step], {}, [body], self.spmd.loc))
        return body

    def _clone(self, dst: Block, op: Op, vmap: dict, split) -> Op:
        operands = [vmap.get(v, v) for v in op.operands]
        regions = []
        for r in op.regions:
            types = [a.type for a in r.args]
            if op.opdef is FOR:
                types = [INDEX] + [v.type for v in operands[3:]]
            nb = Block(types, [a.hint for a in r.args])
            for a, na in zip(r.args, nb.args):
                vmap[a] = na
            for o in r.ops:
                self._clone(nb, o, vmap, split)
            regions.append(nb)
        attrs = dict(op.attrs)
        if split is not None:
            positions = split.lane_positions(op, operands, dst)
            if positions is not None:  # this lane's own rows (columns) of an arange
                vmap[op.results[0]] = positions
                return positions.owner
            operands, attrs = split.rewrite(op, operands, attrs, dst)
        new = make_op(op.opdef, operands, attrs, regions, op.loc)
        for old, nr in zip(op.results, new.results):
            if isinstance(nr.type, TileType) and isinstance(old.type, TileType):
                nr.type = nr.type.with_space(old.type.space)  # keep inferred spaces
            vmap[old] = nr
        dst.append(new)
        return new


class _Split:
    """Rewrites vector ops so each lane works on h = ceil(E/2) of the E rows (UP_DOWN,
    axis 0) or columns (LEFT_RIGHT, axis 1) of the crossing tiles; with an odd E lane 1's
    GM accesses carry a limit (the block's end) so it covers E - h of them."""

    def __init__(self, axis: int, E: int, h: int, lo: Value) -> None:
        self.axis, self.E, self.h, self.lo = axis, E, h, lo

    def tile_axis(self, t) -> int | None:
        """The axis of tile type t that is split between the lanes, or None."""
        if not isinstance(t, TileType):
            return None
        if len(t.shape) == 2 and t.shape[self.axis] == self.E:
            return self.axis
        if self.axis == 1 and len(t.shape) == 1 and t.shape[0] == self.E:
            return 0  # a row vector (e.g. a bias) along the split columns
        return None

    def lane_positions(self, op: Op, operands: list, dst: Block) -> Value | None:
        """Positions follow the split: an arange of the split extent (E), as a split tile
        (LEFT_RIGHT: the 1-d row itself; either mode: its reshape to (E, 1) or (1, E)),
        becomes this lane's part, arange(h) + the lane's first row (column). A causal mask
        `where(cols <= rows, ...)` is then right on each lane. None: not such an op."""
        t = op.results[0].type if op.results else None
        if self.tile_axis(t) is None:
            return None
        if op.opdef.lane_split is LaneSplit.IOTA:
            src, shape = op, None
        elif op.opdef is RESHAPE and operands[0].op is not None and \
                operands[0].op.opdef.lane_split is LaneSplit.IOTA and \
                self.tile_axis(operands[0].type) is None:
            src, shape = operands[0].op, list(t.shape)
        else:
            return None
        if src.attrs["n"] != self.E:
            return None
        made = [_emit(dst, src.opdef, [], {**src.attrs, "n": self.h}, loc=op.loc).result]
        made.append(_emit(dst, ADD, [made[-1], self.lo], loc=op.loc).result)
        if shape is not None:
            shape[self.tile_axis(t)] = self.h
            made.append(_emit(dst, RESHAPE, [made[-1]], {"shape": tuple(shape)},
                              loc=op.loc).result)
        for v in made:  # where the original's tiles live (spaces are inferred by now)
            v.type = v.type.with_space(t.space)
        return made[-1]

    def rewrite(self, op: Op, operands: list, attrs: dict, dst: Block):
        od = op.opdef
        rule = od.lane_split
        if rule is None:
            raise UnsupportedError(
                f"`{od.name}` cannot be divided between the two vector lanes (its "
                "declaration has no lane split rule)", loc=op.loc,
                fix="move it out of the vector work of this mixed kernel, or declare how "
                    "it splits (OpDef.lane_split in mixtile/ir/ops.py)")
        if rule is LaneSplit.REGION:
            tile = op.results[0] if not od.writes else op.operands[1]
            ta = self.tile_axis(tile.type)
            if ta is not None:
                keep = attrs["keep"]
                d = [i for i, k in enumerate(keep) if k][ta]  # region dim of the tile axis
                sizes = list(attrs["sizes"])
                sizes[d] = self.h
                attrs["sizes"] = tuple(sizes)
                first = 2 if od.writes else 1
                start = operands[first + d]
                off = _emit(dst, SADD, [start, self.lo]).result
                # lane 1 of a ragged last block may start past the end: clamp to the
                # extent so its region is empty (clipped), not out of bounds
                tensor = operands[0]
                ext = tensor.type.shape[d]
                ext_v = (_emit(dst, CONST, [], {"dtype": DType.I64, "value": ext})
                         if isinstance(ext, int) else _emit(dst, DIM, [tensor], {"axis": d}))
                operands[first + d] = _emit(dst, SMIN, [off, ext_v.result]).result
                user = attrs.get("row_limit")  # mt.load(rows=...): an absolute bound
                if user is not None and user != d:
                    raise UnsupportedError(
                        "a load with rows= limiting another axis than the one split "
                        "between the two vector lanes", loc=op.loc,
                        fix="limit the split axis, or use the other split mode")
                if self.E % 2:  # stop at the block's end (lane 1 has one less)
                    e_v = _emit(dst, CONST, [], {"dtype": DType.I64, "value": self.E})
                    end = _emit(dst, SADD, [start, e_v.result]).result
                    if user is not None:
                        operands[-1] = _emit(dst, SMIN, [operands[-1], end]).result
                    else:
                        operands.append(end)
                    attrs["row_limit"] = d
        elif rule is LaneSplit.SHAPE:
            shape = list(attrs["shape"])
            ta = self.tile_axis(TileType(attrs.get("dtype", DType.F32), tuple(shape)))
            if ta is not None:
                shape[ta] = self.h
                attrs["shape"] = tuple(shape)
        elif rule is LaneSplit.REDUCE:
            t = op.operands[0].type
            ta = self.tile_axis(t)
            if ta is not None and attrs["axis"] % len(t.shape) == ta:
                raise UnsupportedError(
                    f"a reduction over axis {attrs['axis']} collapses the axis split between "
                    "the two vector lanes", loc=op.loc,
                    fix="reduce along the other axis, use the other split mode, or combine "
                        "the lanes' partials through GM")
        elif rule is LaneSplit.WHOLE and self.tile_axis(op.operands[0].type) is not None:
            raise UnsupportedError(f"{od.name} of a tile split between the vector lanes: it "
                                   "needs the whole tile", loc=op.loc,
                                   fix="apply it before the tile crosses to the vector "
                                       "lanes, or on a tile that is not split")
        elif rule is LaneSplit.WHOLE and self.tile_axis(op.results[0].type) is not None:
            shape = list(op.results[0].type.shape)
            raise UnsupportedError(
                f"{od.name} makes a {shape} tile whose axis {self.axis} is split between the "
                f"two vector lanes ({self.h} each) from a tile that is not split", loc=op.loc,
                fix="load the data in the tile's shape instead (e.g. s[r0:r0 + R, 0:1] for a "
                    "column, not s[r0:r0 + R].reshape(R, 1)), so each lane reads its part")
        return operands, attrs


def expand_mixed_kernel(kernel: Kernel, ctx) -> Kernel:
    expanded = False
    for op in [o for o in kernel.body.ops if o.opdef is SPMD]:
        sides = {_side(o) for o in op.regions[0].ops}
        ws = _routes(kernel)
        # a crossing, or a MIX syncall between a cube phase and a vector phase that hand
        # their data over through GM (a workspace)
        crosses = any(o.opdef is STORE and o.operands[0] in ws or o.opdef is CORE
                      or o.opdef is SYNCALL and o.attrs["core_type"] is CoreType.MIX
                      for o in op.regions[0].walk())
        mixed = CoreType.MIX in sides or (AIC in sides and AIV in sides)
        if mixed and crosses:  # else ClassifyCores explains
            kernel.attrs["_depth"] = ctx.options.get("pipeline_depth", 2)
            _Expander(kernel, op, ctx.target).run()
            del kernel.attrs["_depth"]
            expanded = True
    if expanded:
        kernel.attrs["core"] = CoreType.MIX
    return kernel
