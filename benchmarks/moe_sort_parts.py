"""Where moe_sort's time goes: its parts, each alone in a CUDA graph (median of 10 replays
of 20 launches, untuned: Triton's num_warps / num_stages).

    python benchmarks/moe_sort_parts.py                 # 30B-A3B routing at 8, 32 tokens
    python benchmarks/moe_sort_parts.py --old OLD.py    # also moe_sort of another
                                                        # moe_kernels.py (git show REV:..)

Cases at decode sizes (DIRECT, TB = 1, rows moved): the whole sort (TT 16 / 32 / 64; and
MOVE False), the ranks alone (one block per entry), the rows-per-expert count alone, and
the count plus the whole row-tile map in one block (TT 32 / 64 / 128: the map's serial
path before it was spread over blocks); at 4096 tokens the chunked sort (MOVE False, TM
128, both launches). Off CUDA each case runs once on the simulator (a check of the script).
"""
import argparse
import importlib.util
import sys

import torch

import mixtile as mt
from tilelang_models.qwen3 import moe_kernels as MK

CUDA = torch.cuda.is_available()
DEV = "cuda" if CUDA else "cpu"
TGT = "cuda" if CUDA else "sim"


@mt.kernel
def count_map(ids: mt.Tensor["N", mt.i32], tile_e: mt.Out["MT", mt.i32],
              tile_r0: mt.Out["MT", mt.i32], tile_n: mt.Out["MT", mt.i32],
              ntiles: mt.Out[1, mt.i32], TM: mt.const = 16, TE: mt.const = 128,
              TT: mt.const = 64, TJ: mt.const = 64, MAP: mt.const = True):
    """One block: the rows per expert ((TE, TJ) compares), then (MAP) the whole map."""
    N = ids.shape[0]
    NF = mt.to_float(N)
    for _ in mt.spmd(1):
        ecol = mt.arange(TE).astype(mt.f32).reshape(TE, 1)
        erow = mt.arange(TE).astype(mt.f32).reshape(1, TE)
        cnt = mt.zeros((TE, 1))
        cnt_r = mt.zeros((1, TE))
        less = mt.zeros((TE, 1))
        for j0 in mt.range(0, N, TJ):
            ej, jj = MK._keys(ids, j0, N, NF, TJ)[1:]
            ej = mt.where(jj < NF, ej, 1e9)
            cnt = cnt + mt.row_sum(mt.where(ej == ecol, 1.0, 0.0))
            less = less + mt.row_sum(mt.where(ej < ecol, 1.0, 0.0))
            cnt_r = cnt_r + mt.col_sum(mt.where(ej.reshape(TJ, 1) == erow, 1.0, 0.0))
        if MAP:
            mt.store(ntiles[0:1], MK._tile_map(cnt_r, tile_e, tile_r0, tile_n, TM, TE, TT,
                                               0, TT, cnt, less))
        else:  # the counts kept alive through a store
            mt.store(ntiles[0:1], (mt.row_sum(cnt_r) + mt.col_sum(cnt + less) * 0.0)
                     .reshape(1).astype(mt.i32))


@mt.kernel
def ranks(ids: mt.Tensor["N", mt.i32], pos: mt.Out["N", mt.i32], TB: mt.const = 1,
          TJ: mt.const = 64):
    """The DIRECT sort's ranks alone: pos[i] = #{j : (e_j, j) < (e_i, i)}."""
    N = ids.shape[0]
    NF = mt.to_float(N)
    for blk in mt.spmd(mt.cdiv(N, TB)):
        b0 = blk * TB
        ki = MK._keys(ids, b0, N, NF, TB)[0].reshape(TB, 1)
        rank = mt.zeros((TB, 1))
        for j0 in mt.range(0, N, TJ):
            rank = rank + mt.row_sum(mt.where(MK._keys(ids, j0, N, NF, TJ)[0] < ki, 1.0, 0.0))
        mt.store(pos[b0:b0 + TB], rank.reshape(TB).astype(mt.i32))


def us(fn, steps=20) -> float:
    fn()
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(steps):
            fn()
    ts = []
    for _ in range(10):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        g.replay()
        b.record()
        torch.cuda.synchronize()
        ts.append(a.elapsed_time(b) / steps * 1000)
    return sorted(ts)[len(ts) // 2]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", default="8,32,4096")
    ap.add_argument("--old", default=None, help="another moe_kernels.py: its moe_sort too")
    a = ap.parse_args()
    sorts = [("", MK)]
    if a.old:
        spec = importlib.util.spec_from_file_location("moe_kernels_old", a.old)
        old = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(old)
        sorts.append(("old ", old))
    E, H, K = 128, 2048, 8
    dev = torch.cuda.get_device_name() if CUDA else "CPU (simulator, no timings)"
    print(f"{dev}: 30B-A3B routing ({E} experts, top {K}), rows of {H}; us per launch")
    for T in (int(v) for v in a.tokens.split(",")):
        N = T * K
        g = torch.Generator().manual_seed(T)
        ids = torch.rand(T, E, generator=g).topk(K, -1).indices.int().view(-1).to(DEV)
        wts = torch.rand(N, generator=g).to(DEV)
        x = torch.randn(T, H, generator=g).bfloat16().to(DEV)
        direct = N <= 512
        tm = 16 if direct else 128
        MT = MK.tile_slots(N, E, tm)
        i32 = lambda n: torch.empty(n, dtype=torch.int32, device=DEV)  # noqa: E731
        te, tr, tn, nt, pos = i32(MT), i32(MT), i32(MT), i32(1), i32(N)
        sw = torch.empty(N, 1, device=DEV)
        xs = torch.empty(N, H, device=DEV).bfloat16()
        run = lambda k, *args, **c: (  # noqa: E731
            lambda: mt.run_jit(k, *args, target=TGT, **c))
        out = (ids, wts, x, pos, sw, te, tr, tn, nt, xs)
        kw = dict(NE=E, TOPK=K, TM=tm, TE=128, TH=H)
        cases = {}
        for tag, m in sorts:
            if direct:
                for tt in (16, 32, 64):
                    cases[f"{tag}moe_sort DIRECT TT {tt}"] = run(
                        m.moe_sort, *out, **kw, TB=1, DIRECT=True, TT=tt)
                cases[f"{tag}moe_sort DIRECT TT 64, MOVE False"] = run(
                    m.moe_sort, *out, **kw, TB=1, DIRECT=True, MOVE=False)
            else:
                cases[f"{tag}moe_sort chunked, MOVE False"] = run(
                    m.moe_sort, *out, **kw, TB=64, DIRECT=False, MOVE=False)
        if direct:
            cases["ranks alone (TB 1)"] = run(ranks, ids, pos)
            cases["count alone (one block)"] = run(count_map, ids, te, tr, tn, nt, MAP=False)
            for tt in (32, 64, 128):
                cases[f"count + whole map in one block, TT {tt}"] = run(
                    count_map, ids, te, tr, tn, nt, TT=tt)
        for name, fn in cases.items():
            if CUDA:
                print(f"T {T:5} ({N} entries, map {MT}): {name}: {us(fn):.2f}", flush=True)
            else:
                fn()
                print(f"T {T:5}: {name}: ran", flush=True)


if __name__ == "__main__":
    sys.exit(main())
