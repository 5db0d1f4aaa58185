"""The Qwen3-MoE kernels on the simulator against torch: the router (top-k ties), the
counting sort and its row-tile map (experts with no rows, one row, most rows), the whole
sparse block in bf16 and block-scaled FP8, the decode layer and the layer CLI."""
import json

import pytest
import torch

import mixtile as mt
from tilelang_models.qwen3 import moe_kernels as K
from tilelang_models.qwen3.moe import MoeBlock, MoeWeights, random_moe_weights
from tilelang_models.qwen3.moe_reference import (
    dequantize_blocks,
    moe_ref,
    quantize_blocks,
    quantize_rows,
    route_ref,
    routing_error,
    scaled_mm_ref,
)
from tilelang_models.qwen3.reference import rmsnorm


def _router(x, g, wr, k, norm_in=True, norm_topk=True, te=None, **split):
    T, H = x.shape
    E = wr.shape[0]
    h3 = torch.empty(T, H, dtype=torch.bfloat16)
    ids, wts = torch.empty(T, k, dtype=torch.int32), torch.empty(T, k)
    mt.run_jit(K.moe_router, x, g, wr, h3, ids, wts, 1e-6, NE=E, TOPK=k, NORM_IN=norm_in,
               NORM_TOPK=norm_topk, TE=te or -(-E // 16) * 16, TK=128, **split)
    return h3, ids, wts


def _check_routing(ids, wts, x, wr, k, norm_topk=True):
    """ids must be the reference's top-k (ties: lowest index first) except where a logit's
    bf16 rounding flipped with the fp32 summation order (routing_error about one bf16 ulp);
    the weights where they agree are the reference's."""
    want_ids, want_w = route_ref(x, wr, k, norm_topk)
    assert routing_error(ids, x, wr) <= 1e-2
    same = (ids == want_ids).all(-1)
    assert same.float().mean() >= 0.9, f"{int((~same).sum())} of {len(same)} rows differ"
    torch.testing.assert_close(wts[same], want_w[same], rtol=1e-2, atol=1e-7)
    exact = ((wts - want_w).abs() <= 1e-6 * want_w + 1e-7).all(-1)
    assert exact.float().mean() >= 0.9  # a flipped logit moves its row's weights by ~0.4%


@pytest.mark.parametrize("T,E,k", [(1, 20, 4), (7, 10, 3), (64, 128, 8)])
def test_router_against_torch(T, E, k, gen):
    H = 256
    x = torch.randn(T, H, generator=gen).bfloat16()
    g = (1 + 0.1 * torch.randn(H, generator=gen)).bfloat16()
    wr = (torch.randn(E, H, generator=gen) / 16).bfloat16()
    h3, ids, wts = _router(x, g, wr, k)
    xf = x.float()
    want_h3 = (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6) * g.float()).bfloat16()
    torch.testing.assert_close(h3, want_h3, rtol=8e-3, atol=0)  # one bf16 ulp at most
    _check_routing(ids, wts, h3, wr, k)
    assert torch.allclose(wts.sum(-1), torch.ones(T))


@pytest.mark.parametrize("T,E,k,H,ks,teb,norm_in", [
    (1, 20, 4, 384, 3, 16, True), (7, 128, 8, 512, 4, 32, True),
    (40, 36, 2, 640, 2, 0, True), (5, 10, 3, 256, 5, 16, False)])
def test_split_router_against_one_block_and_torch(T, E, k, H, ks, teb, norm_in, gen):
    """KS > 0 (MoeBlock's decode router on a GPU): the gate GEMM spread over (token tile,
    TEB experts, K split) items, split s taking K tiles s, s + KS, ... (640 columns in 5
    tiles of 128 over 2 splits: 3 and 2 tiles; KS 5 over 2 tiles: splits without work),
    a syncall, then the selection. h3 is the one-block router's, bit for bit; the routing
    differs at most where the f32 summation order flips a bf16 logit."""
    x = torch.randn(T, H, generator=gen).bfloat16()
    g = (1 + 0.1 * torch.randn(H, generator=gen)).bfloat16()
    wr = (torch.randn(E, H, generator=gen) / 16).bfloat16()
    h3, ids, wts = _router(x, g, wr, k, norm_in=norm_in)
    h3s, ids_s, wts_s = _router(x, g, wr, k, norm_in=norm_in, KS=ks, TEB=teb)
    if norm_in:
        assert torch.equal(h3s, h3)
    _check_routing(ids_s, wts_s, h3 if norm_in else x, wr, k)
    same = (ids_s == ids).all(-1)
    assert same.float().mean() >= 0.9
    torch.testing.assert_close(wts_s[same], wts[same], rtol=1e-5, atol=1e-7)


def test_split_router_refuses_a_split_that_does_not_tile(gen):
    x = torch.randn(2, 128).bfloat16()
    with pytest.raises(mt.ArgumentError, match="TEB in the divisors") as e:
        _router(x, torch.ones(128).bfloat16(), torch.randn(20, 128).bfloat16(), 2, KS=2,
                TEB=24)
    assert "moe_kernels.py" in str(e.value)


def test_router_ties_take_the_lowest_expert_index(gen):
    """Duplicated router rows give equal logits (small integers and multiples of 1/64:
    every dot product exact, so kernel and reference see the same values): the kernel
    takes the lowest index first, as torch.sort(stable=True); torch.topk leaves ties in
    no defined order, but its values are the same."""
    T, H, k = 9, 128, 4
    base = torch.randint(-8, 9, (6, H), generator=gen) / 64
    wr = base[torch.tensor([3, 0, 3, 1, 2, 0, 4, 5, 3, 1, 5, 2, 0, 4, 1, 2])].bfloat16()
    x = torch.randint(-2, 3, (T, H), generator=gen).bfloat16()
    _, ids, wts = _router(x, torch.ones(H).bfloat16(), wr, k, norm_in=False, norm_topk=False)
    want_ids, want_w = route_ref(x, wr, k, norm_topk_prob=False)
    assert torch.equal(ids, want_ids)
    torch.testing.assert_close(wts, want_w, rtol=1e-6, atol=1e-7)
    p = torch.softmax((x.float() @ wr.float().T).bfloat16().float(), -1)
    assert torch.equal(torch.gather(p, 1, ids.long()), torch.topk(p, k).values)
    assert (want_w[:, :-1] == want_w[:, 1:]).any(), "the data should hold ties"
    for t in range(T):  # within a tie the indices ascend
        for j in range(k - 1):
            if want_w[t, j] == want_w[t, j + 1]:
                assert ids[t, j] < ids[t, j + 1]


def _sort(ids, wts, x, E, tm=16, tb=16, te=None, tj=16, direct=False, tt=64):
    T, k = ids.shape
    N = T * k
    MT = K.tile_slots(N, E, tm)
    # outputs filled with -7: a value the sort does not write stays visible (torch.empty
    # may hand back an earlier call's buffer holding the right answer)
    o = [torch.full(s, -7, dtype=d) for s, d in (
        ((N,), torch.int32), ((N, 1), torch.float32), ((MT,), torch.int32),
        ((MT,), torch.int32), ((MT,), torch.int32), ((1,), torch.int32),
        ((N, x.shape[1]), torch.bfloat16))]
    mt.run_jit(K.moe_sort, ids.reshape(-1), wts.reshape(-1), x, *o, NE=E, TOPK=k, TM=tm,
               TB=tb, TJ=tj, TE=te or -(-E // 16) * 16, DIRECT=direct, TT=tt)
    return o


def _tiles_ref(ids, E, tm):
    cnt = torch.bincount(ids.reshape(-1).long(), minlength=E)
    off = torch.cumsum(cnt, 0) - cnt
    return [(e, int(off[e]) + j * tm, min(tm, int(cnt[e]) - j * tm))
            for e in range(E) for j in range(-(-int(cnt[e]) // tm))]


@pytest.mark.parametrize("T,E,k,busy,tb,tj,direct,tt", [
    (1, 12, 4, None, 16, 16, False, 64), (1, 12, 4, None, 1, 16, True, 64),
    (7, 10, 3, 2, 16, 32, False, 64), (7, 10, 3, 2, 1, 16, True, 64),
    (64, 20, 4, 7, 16, 16, False, 64), (64, 20, 4, 7, 16, 16, True, 64),
    (300, 36, 2, 0, 64, 16, True, 64), (1000, 36, 2, 0, 64, 16, False, 64),
    (512, 128, 8, 5, 16, 16, False, 64),
    (300, 36, 2, 0, 64, 16, True, 5), (1000, 36, 2, 0, 64, 16, False, 1)])
def test_counting_sort_and_tile_map(T, E, k, busy, tb, tj, direct, tt, gen):
    """Experts with no rows (E > T * k at T = 1), one row, and most rows (`busy` is every
    token's first choice: T tied entries, kept in entry order); the chunked counting sort
    (chunks of 16 or 64 entries; at 4096 entries several chunks per block, at 7 tokens a
    chunk that ends past the entries) and DIRECT (blocks of 1, 16 or 64 entries). The
    map's slices of TT tiles: at TT 5 the DIRECT sort's 15 map blocks (the last one short
    of the map's 74 tiles); at TT 1 the chunked sort's 48 blocks take 3 or 4 of its 161
    tiles each, strided."""
    ids = torch.stack([torch.randperm(E, generator=gen)[:k] for _ in range(T)])
    if busy is not None:  # put `busy` first in every row, keeping the row's ids distinct
        for t in range(T):
            row = ids[t].tolist()
            row = [busy] + [e for e in row if e != busy][:k - 1]
            ids[t] = torch.tensor(row)
    ids = ids.int()
    wts = torch.rand(T, k, generator=gen)
    x = torch.randn(T, 160, generator=gen).bfloat16()
    pos, sw, te, tr, tn, nt, xs = _sort(ids, wts, x, E, tb=tb, tj=tj, direct=direct, tt=tt)
    order = torch.sort(ids.reshape(-1).long(), stable=True).indices
    want_pos = torch.empty_like(order)
    want_pos[order] = torch.arange(len(order))
    assert torch.equal(pos.long(), want_pos)
    assert torch.equal(xs, x[order // k])
    assert torch.equal(sw.view(-1), wts.reshape(-1)[order])
    tiles = _tiles_ref(ids, E, 16)
    assert int(nt[0]) == len(tiles)
    got = list(zip(te.tolist(), tr.tolist(), tn.tolist()))
    assert got[:len(tiles)] == tiles
    assert all(t == (0, 0, 0) for t in got[len(tiles):])  # past the live tiles: zeros
    counts = torch.bincount(ids.reshape(-1).long(), minlength=E)
    assert (counts == 0).any() or T > 1
    if busy is not None:
        assert counts[busy] == T


@pytest.mark.parametrize("fp8", [False, True])
@pytest.mark.parametrize("T,rb", [(1, 8), (100, 8), (100, 7)])
def test_sort_without_moves_then_gather(T, rb, fp8, gen):
    """moe_sort with MOVE = False (pos and the tile map only) followed by moe_gather (the
    row moves over cdiv(N, RB) blocks; RB 7 leaves a last block short): the same outputs
    as the sort that moves its rows itself, bit for bit (FP8: the same quantised rows)."""
    E, k, H = 20, 3, 256
    ids = torch.stack([torch.randperm(E, generator=gen)[:k] for _ in range(T)]).int()
    wts = torch.rand(T, k, generator=gen)
    x = torch.randn(T, H, generator=gen).bfloat16()
    N, MT, G = T * k, K.tile_slots(T * k, E, 16), H // 128
    i32 = dict(dtype=torch.int32)

    def outs():
        head = [torch.empty(N, **i32), torch.empty(N, 1), torch.empty(MT, **i32),
                torch.empty(MT, **i32), torch.empty(MT, **i32), torch.empty(1, **i32)]
        if fp8:
            return head + [torch.empty(N, G, 128, dtype=torch.float8_e4m3fn),
                           torch.empty(N, G, 1)]
        return head + [torch.empty(N, H, dtype=torch.bfloat16)]

    kern, gat = (K.moe_sort_fp8, K.moe_gather_fp8) if fp8 else (K.moe_sort, K.moe_gather)
    xin = x.view(T, G, 128) if fp8 else x
    c = dict(NE=E, TOPK=k, TE=32, TB=16, TJ=16, **(dict(GT=G) if fp8 else {}))
    want, got = outs(), outs()
    mt.run_jit(kern, ids.reshape(-1), wts.reshape(-1), xin, *want, **c)
    mt.run_jit(kern, ids.reshape(-1), wts.reshape(-1), xin, *got, MOVE=False, **c)
    mt.run_jit(gat, wts.reshape(-1), xin, got[0], got[1], *got[6:], TOPK=k, RB=rb,
               **(dict(GT=G) if fp8 else {}))
    nt = int(want[5][0])
    for i, (a, b) in enumerate(zip(want, got)):
        a, b = (a[:nt], b[:nt]) if i in (2, 3, 4) else (a, b)
        assert torch.equal(a.view(torch.uint8) if a.dtype == torch.float8_e4m3fn else a,
                           b.view(torch.uint8) if b.dtype == torch.float8_e4m3fn else b), i


def _block_inputs(T, E, H, gen, busy=None):
    x = torch.randn(T, H, generator=gen)
    w = random_moe_weights(E, H, 256, seed=int(torch.randint(1 << 30, (1,), generator=gen)))
    if busy is not None:  # a shared direction in x that router row `busy` follows
        d = torch.randn(H, generator=gen)
        x = x + 2 * d
        w.router[busy] = (d / d.norm() * 3).bfloat16()
    return x.bfloat16(), torch.randn(T, H, generator=gen).bfloat16(), w


@pytest.mark.parametrize("T,E,k,busy", [(1, 16, 4, None), (7, 10, 3, None), (64, 12, 2, 5),
                                        (1000, 16, 2, None)])
def test_moe_block_bf16_against_torch(T, E, k, busy, gen):
    H = 256
    x, res, w = _block_inputs(T, E, H, gen, busy)
    blk = MoeBlock(w, k)
    assert blk(x[:0], res=res[:0]).shape == (0, H)
    out = blk(x, res=res)
    ids, wts = blk.routing(T)
    _check_routing(ids, wts, x, w.router, k)
    want = moe_ref(x, w.router, w.gate, w.up, w.down, k, res=res, routing=(ids, wts))
    torch.testing.assert_close(out.float(), want.float(), rtol=1.6e-2, atol=1e-2)
    if busy is not None:
        assert (ids == busy).any(-1).float().mean() > 0.9  # most tokens on one expert


@pytest.mark.parametrize("fp8", [False, True])
def test_moe_block_in_its_cuda_form_on_the_simulator(fp8, gen):
    """MoeBlock as it runs on CUDA above 512 entries, on the simulator: the split router
    (K in 3 splits of 128 columns, 16-expert items), the chunked sort without its moves,
    moe_gather, whole-row copies, 32-row tiles (and moe_quant with FP8), against the
    golden."""
    T, E, H, k = 300, 24, 384, 2
    x, res, w = _block_inputs(T, E, H, gen)
    w = w.quantized() if fp8 else w
    tiles = {"router": dict(KS=3, TEB=16, TK=128), "sort": dict(MOVE=False, TM=32, TH=384),
             "gather": dict(RB=5, **({} if fp8 else dict(TH=384))),
             "gate_up": dict(TM=32), "down": dict(TM=32, TC=384)}
    if fp8:
        del tiles["sort"]["TH"]
    blk = MoeBlock(w, k, tiles=tiles)
    assert [s[0] for s in blk.steps(x)] == (["router", "sort", "gather", "gate_up"]
                                            + ["quant"] * fp8 + ["down"])
    g = (1 + 0.1 * torch.randn(H, generator=gen)).bfloat16()
    out = blk(x, res=res, norm=(g, 1e-6))
    ids, wts = blk.routing(T)
    h3 = blk._bufs[T]["h3"]  # the router's rmsnorm(x) * g, one bf16 ulp from torch's
    torch.testing.assert_close(h3, rmsnorm(x, g, 1e-6).bfloat16(), rtol=8e-3, atol=0)
    _check_routing(ids, wts, h3, w.router, k)
    want = moe_ref(h3, w.router, w.gate, w.up, w.down, k, res=res, routing=(ids, wts),
                   scales=w.scales() if fp8 else None)
    torch.testing.assert_close(out.float(), want.float(), rtol=1.6e-2, atol=1e-2)


@pytest.mark.parametrize("fp8", [False, True])
def test_moe_down_with_a_bf16_workspace(fp8, gen):
    """moe_down's YS16: the weighted expert outputs rounded to bf16 before the slot-order
    sum (one more rounding per slot): the golden's tolerance still holds, and the result
    differs from the f32 workspace's by at most a few bf16 ulps of the output."""
    T, E, H, k = 100, 12, 256, 3
    x, res, w = _block_inputs(T, E, H, gen)
    w = w.quantized() if fp8 else w
    outs = []
    for ys16 in (False, True):
        blk = MoeBlock(w, k, tiles={"down": {"YS16": ys16}})
        outs.append(blk(x, res=res).float())
    want = moe_ref(x, w.router, w.gate, w.up, w.down, k, res=res, routing=blk.routing(T),
                   scales=w.scales()).float()
    torch.testing.assert_close(outs[1], want, rtol=1.6e-2, atol=1e-2)
    assert float((outs[1] - outs[0]).abs().max()) <= 4 * 2 ** -8 * float(want.abs().max())


@pytest.mark.parametrize("fp8", [False, True])
@pytest.mark.parametrize("T,E,k", [(1, 12, 3), (1, 8, 8), (5, 6, 4)],
                         ids=["T1", "T1-all-experts", "T5-shared-experts"])
def test_routed_block_against_the_sorted_block_and_torch(T, E, k, fp8, gen):
    """The routed form (no sort: moe_gate_up_routed, moe_down_routed; FLAT; GROUPED:
    moe_down on the entry-order tile map) against the golden and the sorted form, with the
    norm and a residual; one token (every expert chosen when k = E) and five tokens sharing
    experts (its rows read once per entry, still right)."""
    H = 256
    x, res, w = _block_inputs(T, E, H, gen)
    w = w.quantized() if fp8 else w
    g = (1 + 0.1 * torch.randn(H, generator=gen)).bfloat16()
    routed = MoeBlock(w, k, routed_tokens=T)
    assert [s[0] for s in routed.steps(x)] == (["router"] + ["quant_x"] * fp8 + ["gate_up"]
                                               + ["quant"] * fp8 + ["down"])
    out = routed(x, res=res, norm=(g, 1e-6)).clone()
    ids, wts = routed.routing(T)
    h3 = routed._bufs[T]["h3"]
    _check_routing(ids, wts, h3, w.router, k)
    want = moe_ref(h3, w.router, w.gate, w.up, w.down, k, res=res, routing=(ids, wts),
                   scales=w.scales())
    torch.testing.assert_close(out.float(), want.float(), rtol=1.6e-2, atol=1e-2)
    flat = MoeBlock(w, k, routed_tokens=T, tiles={"down": {"FLAT": True}})
    got = flat(x, res=res, norm=(g, 1e-6))  # one (slot, K step) loop in moe_down_routed
    torch.testing.assert_close(got.float(), want.float(), rtol=1.6e-2, atol=1e-2)
    grouped = MoeBlock(w, k, routed_tokens=T, tiles={"down": {"GROUPED": True}})
    assert grouped.steps(x)[-1][1] in (K.moe_down, K.moe_down_fp8)  # on the entry map
    got = grouped(x, res=res, norm=(g, 1e-6))
    assert torch.equal(got, out)  # moe_down_routed's arithmetic, in two phases
    sorted_ = MoeBlock(w, k, routed_tokens=0)
    assert "sort" in [s[0] for s in sorted_.steps(x)]
    ref = sorted_(x, res=res, norm=(g, 1e-6))
    assert torch.equal(sorted_.routing(T)[0], ids)
    # the same products in the same order, tile for tile: at most one bf16 rounding apart
    assert float((out.float() - ref.float()).abs().max()) <= 2 ** -7 * float(
        ref.float().abs().max())


@pytest.mark.parametrize("fp8", [False, True])
def test_gate_up_in_one_k_loop_is_the_same_block(fp8, gen):
    """moe_gate_up(_fp8) ONE_LOOP (each A tile loaded once for gate and up): the same
    products in the same order as the two K loops, so the same bits, and the golden; at
    the NPU default tiles its two live weight tiles overflow L0B (CapacityError)."""
    T, E, H, k = 40, 6, 256, 2
    x, res, w = _block_inputs(T, E, H, gen)
    w = w.quantized() if fp8 else w
    # TK 64: two weight tiles of 128 x 64, double-buffered, fit an a2's 64 KiB of L0B
    tk = {} if fp8 else {"TK": 64}
    outs = [MoeBlock(w, k, tiles={"gate_up": {"ONE_LOOP": one, **tk}})(x, res=res).clone()
            for one in (False, True)]
    assert torch.equal(outs[0], outs[1])
    blk = MoeBlock(w, k)
    blk(x, res=res)
    want = moe_ref(x, w.router, w.gate, w.up, w.down, k, res=res, routing=blk.routing(T),
                   scales=w.scales())
    torch.testing.assert_close(outs[1].float(), want.float(), rtol=1.6e-2, atol=1e-2)
    if not fp8:  # TN 128 x TK 256: 2 x 64 KiB of weight tiles
        with pytest.raises(mt.CapacityError, match=r"moe_kernels.py:\d+: L0B overflows"):
            MoeBlock(w, k, tiles={"gate_up": {"ONE_LOOP": True}})(x, res=res)


def test_which_tokens_take_the_routed_form():
    """MoeBlock's policy: the routed form at one token on CUDA with bf16 weights only (FP8
    and the simulator's default stay sorted; routed_tokens overrides); its down is moe_down
    on the entry-order map there unless tiles say GROUPED False; GROUPED only there."""
    wb, wf = random_moe_weights(16, 256, 128), random_moe_weights(16, 256, 128, fp8=True)
    cuda = MoeBlock(wb, 4, target="cuda")
    assert cuda.routed(1) and not cuda.routed(2)
    assert not MoeBlock(wf, 4, target="cuda").routed(1)
    assert not MoeBlock(wb, 4).routed(1) and MoeBlock(wb, 4, routed_tokens=3).routed(3)
    x1, x8 = (torch.zeros(t, 256, dtype=torch.bfloat16) for t in (1, 8))
    assert [s[1] for s in cuda.steps(x1)] == [K.moe_router, K.moe_gate_up_routed,
                                              K.moe_down]
    rows = MoeBlock(wb, 4, target="cuda", tiles={"down": {"GROUPED": False}})
    assert rows.steps(x1)[-1][1] is K.moe_down_routed and not rows.grouped_down(1)
    assert "TOPK" not in rows.consts(1)["down"]
    assert MoeBlock(wb, 4, routed_tokens=1).steps(x1)[-1][1] is K.moe_down_routed  # sim
    grouped = MoeBlock(wb, 4, target="cuda", tiles={"down": {"GROUPED": True}})
    assert grouped.steps(x1)[-1][1] is K.moe_down
    assert grouped.consts(8)["down"] == cuda.consts(8)["down"]  # sorted: GROUPED ignored
    assert [s[0] for s in grouped.steps(x8)] == ["router", "sort", "gate_up", "down"]


def test_quantize_helpers_round_trip(gen):
    w = torch.randn(3, 200, 300, generator=gen)
    q, s = quantize_blocks(w)
    assert q.dtype == torch.float8_e4m3fn and s.shape == (3, 2, 3)
    assert ((dequantize_blocks(q, s) - w).abs() <= w.abs() / 16 + s.repeat_interleave(
        128, -2).repeat_interleave(128, -1)[..., :200, :300] / 2).all()
    a = torch.randn(5, 256, generator=gen)
    aq, a_s = quantize_rows(a)
    assert aq.float().abs().max() <= 448 and a_s.shape == (5, 2)


@pytest.mark.parametrize("T", [1, 7, 40])
def test_moe_block_fp8_against_torch(T, gen):
    """The block-scaled FP8 path against a torch implementation of the same arithmetic
    (only the fp32 summation order differs), and against bf16 within FP8's error."""
    E, H, k = 8, 256, 3
    x, res, wb = _block_inputs(T, E, H, gen)
    w = wb.quantized()
    blk = MoeBlock(w, k)
    out = blk(x, res=res)
    route = blk.routing(T)
    _check_routing(*route, x, w.router, k)
    want = moe_ref(x, w.router, w.gate, w.up, w.down, k, res=res, scales=w.scales(),
                   routing=route)
    torch.testing.assert_close(out.float(), want.float(), rtol=1.6e-2, atol=1e-2)
    bf = moe_ref(x, wb.router, wb.gate, wb.up, wb.down, k, routing=route).float()
    fp8 = (out.float() - res.float())
    err = (fp8 - bf).norm() / bf.norm()
    assert err < 0.1, f"FP8 vs bf16 relative error {err}"


def test_fp8_scaled_mm_reference_matches_dequantised_product(gen):
    """The reference's K-block product equals the product of the dequantised operands."""
    a, w = torch.randn(6, 384, generator=gen), torch.randn(130, 384, generator=gen)
    (aq, a_s), (wq, ws) = quantize_rows(a), quantize_blocks(w)
    deq_a = (aq.float().view(6, 3, 128) * a_s[..., None]).view(6, 384)
    torch.testing.assert_close(scaled_mm_ref(aq, a_s, wq, ws),
                               deq_a @ dequantize_blocks(wq, ws).T, rtol=1e-5, atol=1e-4)


def test_moe_user_errors_name_the_line_and_the_fix(gen):
    x = torch.randn(3, 128, generator=gen).bfloat16()
    with pytest.raises(mt.ArgumentError, match=r"moe_kernels.py:\d+: moe_router: TE=16 < "
                                               r"NE=20.*\n.*fix: pass TE >= 20"):
        _router(x, x[0], torch.randn(20, 128).bfloat16(), 2, te=16)
    w = random_moe_weights(4, 128, 128, fp8=True)
    with pytest.raises(mt.ArgumentError, match="TN=96 does not divide the 128-row"):
        MoeBlock(w, 2, tiles={"down": {"TN": 96}})(x)
    with pytest.raises(ValueError, match=r"131072 tokens x top 128 .* at most 131071"):
        MoeBlock(random_moe_weights(128, 16, 16), 128)(torch.zeros(131072, 16).bfloat16())
    with pytest.raises(ValueError, match=r"DIRECT at 131072 entries x 128 expert slots"):
        MoeBlock(random_moe_weights(128, 16, 16), 8, tiles={"sort": {"DIRECT": True}})(
            torch.zeros(16384, 16).bfloat16())
    with pytest.raises(ValueError, match=r"TM differs between .*give the same TM"):
        MoeBlock(w, 2, tiles={"gate_up": {"TM": 32}})(x)
    with pytest.raises(ValueError, match=r"MoeWeights.s_gate: expected torch.float32"):
        MoeBlock(MoeWeights(w.router, w.gate, w.up, w.down, None, w.s_up, w.s_down), 2)
    wb = random_moe_weights(4, 128, 128)
    with pytest.raises(mt.ArgumentError, match=r"moe_kernels.py:\d+: moe_gather: RB=0.*\n"
                                               r".*fix: pass RB >= 1"):
        MoeBlock(wb, 2, tiles={"sort": {"MOVE": False}, "gather": {"RB": 0}})(x)
    with pytest.raises(ValueError, match=r"unknown kernel 'gathr' \(one of \['router', "
                                         r"'sort', 'gather', 'gate_up', 'quant', 'quant_x', "
                                         r"'down'\]"):
        MoeBlock(wb, 2, tiles={"gathr": {"RB": 4}})(x)
    for kern in ("gate_up", "down"):  # the one-token form's FP8 kernels check theirs too
        with pytest.raises(mt.ArgumentError, match=rf"moe_kernels.py:\d+: moe_{kern}_routed_"
                                                   rf"fp8: TN=96 .*\n.*fix: pass TN = 128"):
            MoeBlock(w, 2, routed_tokens=1, tiles={kern: {"TN": 96}})(x[:1])


# ---------------------------------------------------------------- the decode layer and CLI


def test_moe_decode_layer_against_the_reference(gen):
    from tilelang_models.qwen3.moe_config import get_moe_config
    from tilelang_models.qwen3.moe_layer import MoeDecodeLayer, moe_decode_layer_ref
    from tilelang_models.qwen3.moe_weights import random_moe_layer
    from tilelang_models.qwen3.paged import make_paged_cache

    cfg = get_moe_config("tiny-moe")
    for fp8 in (False, True):
        w = random_moe_layer(cfg, int(torch.randint(1 << 30, (1,), generator=gen)), fp8=fp8)
        k, v, bt, sl = make_paged_cache(cfg.attn, [33, 1, 17], 16, 3)
        x = torch.randn(3, cfg.attn.hidden_size, generator=gen).bfloat16()
        kr, vr = k.clone(), v.clone()
        layer = MoeDecodeLayer(cfg, w, progress=False)
        out = layer(x, k, v, bt, sl)
        want, h2_ref = moe_decode_layer_ref(cfg, w, x, kr, vr, bt, sl, h2=layer.h2(3),
                                            routing=layer.moe.routing(3))
        h3 = rmsnorm(layer.h2(3), w.attn.post_attention_layernorm, cfg.attn.rms_norm_eps)
        assert routing_error(layer.moe.routing(3)[0], h3.bfloat16(), w.moe.router) <= 1e-2
        for got, ref in ((out, want), (layer.h2(3), h2_ref), (k, kr), (v, vr)):
            err = float((got.float() - ref.float()).abs().max() / ref.float().abs().max())
            assert err <= 2e-2, (fp8, err)


@pytest.mark.parametrize("fp8", [False, True])
def test_layer_cli_takes_a_qwen3_moe_checkpoint(fp8, tmp_path, capsys):
    import numpy as np

    from tilelang_models.qwen3.__main__ import main
    from tilelang_models.qwen3.moe_config import get_moe_config
    from tilelang_models.qwen3.moe_weights import (
        load_hf_moe_layer,
        random_moe_layer,
        save_hf_moe_checkpoint,
    )

    cfg = get_moe_config("tiny-moe")
    w = random_moe_layer(cfg, 1)
    ck = tmp_path / "ckpt"
    save_hf_moe_checkpoint(ck, cfg, {2: w}, fp8=fp8)
    got = load_hf_moe_layer(ck, 2)
    assert got.moe.fp8 == fp8
    if not fp8:
        assert torch.equal(got.moe.gate, w.moe.gate) and torch.equal(got.moe.down, w.moe.down)
    else:  # the checkpoint's scales are used as they are (w = q * scale_inv)
        q, s = quantize_blocks(w.moe.up)
        assert torch.equal(got.moe.up.float(), q.float()) and torch.equal(got.moe.s_up, s)
    save = tmp_path / "step.npz"
    assert main(["--hf-dir", str(ck), "--layer", "2", "--batch", "2", "--seq", "20",
                 "--seed", "4", "--save", str(save)]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["passed"] and res["config"] == "ckpt" and res["batch"] == 2
    assert set(res) == {"config", "target", "batch", "seq", "max_abs_err", "rel_err",
                        "passed", "compile_s", "run_s"}
    z = np.load(save)
    assert sorted(z.files) == ["block_table", "k_cache", "out", "seq_lens", "v_cache", "x"]
    assert z["out"].shape == (2, cfg.attn.hidden_size)
    with pytest.raises(KeyError, match="layer 0 tensor"):
        main(["--hf-dir", str(ck), "--layer", "0"])


@pytest.mark.parametrize("new,ctx", [([5, 1, 37], [0, 20, 9]), ([70], [0])])
def test_moe_prefill_layer_against_the_reference(new, ctx, gen):
    """PrefillLayer's attention (chunked, paged) then the sparse block, over packed new
    tokens (a decode step among prefills included)."""
    from tilelang_models.qwen3.moe_config import get_moe_config
    from tilelang_models.qwen3.moe_layer import MoePrefillLayer, moe_prefill_layer_ref
    from tilelang_models.qwen3.moe_weights import random_moe_layer
    from tilelang_models.qwen3.paged import make_paged_cache

    cfg = get_moe_config("tiny-moe")
    w = random_moe_layer(cfg, int(torch.randint(1 << 30, (1,), generator=gen)))
    lens = [c + n for c, n in zip(ctx, new)]
    k, v, bt, _ = make_paged_cache(cfg.attn, lens, 16, 2, cached=ctx)
    x = torch.randn(sum(new), cfg.attn.hidden_size, generator=gen).bfloat16()
    cu = torch.tensor([0, *torch.tensor(new).cumsum(0).tolist()], dtype=torch.int32)
    cl = torch.tensor(ctx, dtype=torch.int32)
    kr, vr = k.clone(), v.clone()
    layer = MoePrefillLayer(cfg, w)
    out = layer(x, cu, cl, k, v, bt)
    T = sum(new)
    want, h2_ref = moe_prefill_layer_ref(cfg, w, x, cu, cl, kr, vr, bt, h2=layer.h2,
                                         routing=layer.moe.routing(T))
    h3 = rmsnorm(layer.h2, w.attn.post_attention_layernorm, cfg.attn.rms_norm_eps).bfloat16()
    assert routing_error(layer.moe.routing(T)[0], h3, w.moe.router) <= 1e-2
    for got, ref in ((out, want), (layer.h2, h2_ref), (k, kr), (v, vr)):
        err = float((got.float() - ref.float()).abs().max() / ref.float().abs().max())
        assert err <= 2e-2, err
