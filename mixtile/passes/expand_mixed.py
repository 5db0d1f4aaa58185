"""ExpandMixedKernel: split a launch holding cube and vector work into per-core programs.

Automatic mode, for a cube result consumed by vector work (a GEMM with an epilogue the
L0C writeback cannot do). After LegalizePaths, such a value crosses through a per-core
GM workspace (A2/A3 have no L0C->UB path): a `store` from L0C and a `load` into UB.
This pass rewrites the launch

    spmd(G) { body(blk) }

into a persistent launch of min(G, clusters) blocks, each running its share of the blocks
on one cluster:

    spmd(min(G, C)) ^(c):
      core AIC          { for blk in range(c, G, C): cube ops; store ws[c]; fence;
                          set_flag(READY -> AIV); wait_flag(FREE) }
      core AIV ^(lane): { for blk in range(c, G, C): wait_flag(READY); load my half of
                          ws[c]; set_flag(FREE -> AIC); vector ops on my half }

The workspace slot is the cluster's, so it is reused only after both vector lanes have
read it (FREE counts once both lanes set it), and a block never waits on another cluster.
The vector program is split UP_DOWN: every 2-d tile with the crossing tile's row count R
keeps R/2 rows per lane (lane 0 the first half); GM regions move by lane * R/2 rows.
Not in this version: vector->cube crossings, crossings inside loops (software
pipelining), odd R, and cube and vector work in one loop; each is an UnsupportedError.
"""
from __future__ import annotations

from mixtile.errors import UnsupportedError
from mixtile.ir.builder import make_op
from mixtile.ir.core import Block, Kernel, Op, Value
from mixtile.ir.registry import OPS
from mixtile.ir.types import (
    INDEX,
    CoreRole,
    CoreType,
    DType,
    MemSpace,
    Role,
    TensorType,
    TileType,
)
from mixtile.passes.classify_cores import core_of

AIC, AIV, NONE = CoreType.AIC, CoreType.AIV, CoreType.NONE


def _side(op: Op) -> CoreType:
    if not op.regions:
        return core_of(op)
    sides = {_side(o) for r in op.regions for o in r.ops} - {NONE}
    if len(sides) > 1:
        raise UnsupportedError(
            "cube and vector work inside one loop needs a pipelined mixed loop, which "
            "this version does not build", loc=op.loc,
            fix="keep the loop on the cube (e.g. the K loop of a GEMM) and do the vector "
                "work after it")
    return sides.pop() if sides else NONE


def _const(kernel: Kernel, value: int) -> Value:
    op = make_op(OPS["const"], [], {"dtype": DType.I64, "value": value})
    op.parent = kernel.body
    kernel.body.ops.insert(0, op)
    return op.result


def _emit(blk: Block, name: str, operands, attrs=None, loc=None) -> Op:
    kw = {"loc": loc} if loc is not None else {}
    op = make_op(OPS[name], list(operands), attrs or {}, **kw)
    blk.append(op)
    return op


class _Expander:
    def __init__(self, kernel: Kernel, spmd: Op, target) -> None:
        self.k, self.spmd, self.t = kernel, spmd, target
        self.body = spmd.regions[0]
        ws = {p.value for p in kernel.params if p.role is Role.SCRATCH}
        self.cross_st = [op for op in self.body.ops if op.name == "store"
                         and op.operands[0] in ws and op.operands[1].type.space is MemSpace.L0C]
        self.cross_ld = [op for op in self.body.walk() if op.name == "load"
                         and op.operands[0] in ws]
        for op in self.body.walk():
            if op.name == "store" and op.operands[0] in ws and op not in self.cross_st:
                raise UnsupportedError(
                    "a vector->cube crossing (or one inside a loop) needs manual mode, "
                    "which this version does not have", loc=op.loc)
        self.flag_of = {op.operands[0]: 2 * i for i, op in enumerate(self.cross_st)}
        if len(self.flag_of) > 8:
            raise UnsupportedError("more than 8 cube->vector crossings in one launch",
                                   loc=self.cross_st[8].loc)
        rows = {op.operands[1].type.shape[0] for op in self.cross_st}
        if len(rows) != 1:
            raise UnsupportedError(f"crossing tiles have different row counts {sorted(rows)}",
                                   loc=self.cross_st[0].loc)
        self.R = rows.pop()
        if self.R % 2:
            raise UnsupportedError(
                f"the cube result has {self.R} rows: an UP_DOWN split of an odd row count "
                "is not supported in this version", loc=self.cross_st[0].loc,
                fix="use an even row tile (e.g. TM=16)")
        self.h = self.R // 2

    def run(self) -> None:
        k, t = self.k, self.t
        clusters = _const(k, t.clusters)
        grid = self.spmd.operands[0]
        gp = make_op(OPS["smin"], [grid, clusters], loc=self.spmd.loc)
        top = k.body
        at = top.ops.index(self.spmd)
        gp.parent = top
        top.ops.insert(at, gp)
        for p in k.params:  # one workspace slot per cluster
            if p.role is Role.SCRATCH and p.value in self.flag_of:
                ty = p.value.type
                p.value.type = TensorType(ty.dtype, (t.clusters, *ty.shape[1:]))
        nb = Block([INDEX], ["c"])
        c = nb.args[0]
        # the cube program
        ra = Block()
        la = self._loop(ra, c, grid, clusters)
        vmap = {self.body.args[0]: la.args[0]}
        for op in self.body.ops:
            if _side(op) is AIV:
                continue
            new = self._clone(la, op, vmap, None)
            if op in self.cross_st:
                new.operands[2] = c
                _emit(la, "fence", [], loc=op.loc)
                _emit(la, "set_flag", [], {"flag": self.flag_of[op.operands[0]],
                                           "to": CoreRole.AIV}, loc=op.loc)
        for op in self.cross_st:
            _emit(la, "wait_flag", [], {"flag": self.flag_of[op.operands[0]] + 1},
                  loc=op.loc)
        _emit(la, "yield", [])
        nb.append(make_op(OPS["core"], [], {"core": AIC}, [ra], self.spmd.loc))
        # the vector program, split UP_DOWN over the two lanes
        rv = Block([INDEX], ["lane"])
        lv = self._loop(rv, c, grid, clusters)
        half = _const(k, self.h)
        lo = _emit(lv, "smul", [rv.args[0], half]).result
        vmap = {self.body.args[0]: lv.args[0]}
        split = _Split(self.R, self.h, lo, c)
        for op in self.body.ops:
            if _side(op) is AIC:
                continue
            flag = self.flag_of.get(op.operands[0]) if op in self.cross_ld else None
            if flag is not None:
                _emit(lv, "wait_flag", [], {"flag": flag}, loc=op.loc)
            new = self._clone(lv, op, vmap, split)
            if flag is not None:
                new.operands[1] = c  # this cluster's slot
                _emit(lv, "set_flag", [], {"flag": flag + 1, "to": CoreRole.AIC}, loc=op.loc)
        _emit(lv, "yield", [])
        nb.append(make_op(OPS["core"], [], {"core": AIV}, [rv], self.spmd.loc))
        new_spmd = make_op(OPS["spmd"], [gp.result], regions=[nb], loc=self.spmd.loc)
        new_spmd.parent = top
        top.ops[top.ops.index(self.spmd)] = new_spmd

    def _loop(self, region: Block, c: Value, grid: Value, step: Value) -> Block:
        body = Block([INDEX], ["blk"])
        region.append(make_op(OPS["for"], [c, grid, step], {}, [body], self.spmd.loc))
        return body

    def _clone(self, dst: Block, op: Op, vmap: dict, split) -> Op:
        operands = [vmap.get(v, v) for v in op.operands]
        regions = []
        for r in op.regions:
            types = [a.type for a in r.args]
            if op.name == "for":
                types = [INDEX] + [v.type for v in operands[3:]]
            nb = Block(types, [a.hint for a in r.args])
            for a, na in zip(r.args, nb.args):
                vmap[a] = na
            for o in r.ops:
                self._clone(nb, o, vmap, split)
            regions.append(nb)
        attrs = dict(op.attrs)
        if split is not None:
            operands, attrs = split.rewrite(op, operands, attrs, dst)
        new = make_op(op.opdef, operands, attrs, regions, op.loc)
        for old, nr in zip(op.results, new.results):
            if isinstance(nr.type, TileType) and isinstance(old.type, TileType):
                nr.type = nr.type.with_space(old.type.space)  # keep inferred spaces
            vmap[old] = nr
        dst.append(new)
        return new


class _Split:
    """Rewrites vector ops so each lane works on h = R/2 of the R rows."""

    def __init__(self, R: int, h: int, lo: Value, slot: Value) -> None:
        self.R, self.h, self.lo, self.slot = R, h, lo, slot

    def _is_split(self, t) -> bool:
        return isinstance(t, TileType) and len(t.shape) == 2 and t.shape[0] in (self.R,
                                                                                self.h)

    def rewrite(self, op: Op, operands: list, attrs: dict, dst: Block):
        name = op.name
        if name in ("load", "store"):
            tile = op.results[0] if name == "load" else op.operands[1]
            if self._is_split(tile.type) and tile.type.shape[0] == self.R:
                keep = attrs["keep"]
                d = keep.index(True)  # the region dim that becomes tile rows
                sizes = list(attrs["sizes"])
                sizes[d] = self.h
                attrs["sizes"] = tuple(sizes)
                first = 1 if name == "load" else 2
                off = _emit(dst, "sadd", [operands[first + d], self.lo]).result
                # lane 1 of a ragged last block may start past the end: clamp to the
                # extent so its region is empty (clipped), not out of bounds
                tensor = operands[0]
                ext = tensor.type.shape[d]
                ext_v = (_emit(dst, "const", [], {"dtype": DType.I64, "value": ext})
                         if isinstance(ext, int) else _emit(dst, "dim", [tensor], {"axis": d}))
                operands[first + d] = _emit(dst, "smin", [off, ext_v.result]).result
        elif name in ("full", "broadcast"):
            shape = tuple(attrs["shape"])
            if len(shape) == 2 and shape[0] == self.R:
                attrs["shape"] = (self.h, shape[1])
        elif name == "reduce" and self._is_split(op.operands[0].type):
            if attrs["axis"] in (0, -2):
                raise UnsupportedError(
                    "a reduction over the rows collapses the axis split between the two "
                    "vector lanes", loc=op.loc,
                    fix="reduce along the last axis (row_sum), or combine the lanes' "
                        "partials through GM")
        elif name in ("reshape", "transpose") and self._is_split(op.operands[0].type):
            raise UnsupportedError(f"{name} of a tile split between the vector lanes",
                                   loc=op.loc)
        return operands, attrs


def expand_mixed_kernel(kernel: Kernel, ctx) -> Kernel:
    expanded = False
    for op in [o for o in kernel.body.ops if o.name == "spmd"]:
        sides = {_side(o) for o in op.regions[0].ops}
        ws = {p.value for p in kernel.params if p.role is Role.SCRATCH}
        crosses = any(o.name == "store" and o.operands[0] in ws for o in op.regions[0].walk())
        if AIC in sides and AIV in sides and crosses:  # else ClassifyCores explains
            _Expander(kernel, op, ctx.target).run()
            expanded = True
    if expanded:
        kernel.attrs["core"] = CoreType.MIX
    return kernel
