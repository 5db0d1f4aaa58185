"""The Qwen3-MoE sparse block as mixtile launches (kernels: moe_kernels.py).

    block = MoeBlock(weights, top_k=8, target="sim")
    out = block(h, res=h2, norm=(g, eps))   # out = res + moe(rmsnorm(h) * g)
    out = block(x)                          # out = moe(x): x already normed, no residual

Launches: moe_router (RMSNorm, gate GEMM, softmax, top-k, renormalisation) ->
moe_sort (counting sort of the (token, slot) entries by expert, the row-tile map, the
activations gathered in expert order, quantised when FP8; on CUDA above 512 entries the
gathering is moe_gather's launch) -> moe_gate_up (grouped, SiLU(gate) * up fused) ->
[FP8: moe_quant, the activation per token in 1x128 groups] -> moe_down (grouped, routing
weight fused; a syncall; the sum back to token order onto the residual). The weights are
bf16, or e4m3 with 128x128 block scales (MoeWeights.fp8): the FP8 kernels' K loops scale
each 128-wide block's product.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

import mixtile as mt
from tilelang_models.qwen3 import moe_kernels as K
from tilelang_models.qwen3.moe_reference import quantize_blocks

__all__ = ["MoeWeights", "MoeBlock", "random_moe_weights"]

# up to this many (token, slot) entries moe_sort runs DIRECT (one launch, no barrier)
SORT_DIRECT_MAX = 512


def splits_router(T: int, sms: int) -> bool:
    """On CUDA: is the router's GEMM split (KS > 0) for T tokens on sms SMs? One block per
    16 tokens would read the whole gate weight: split while those are few."""
    return -(-T // 16) * 4 < sms


@dataclass
class MoeWeights:
    """Stacked expert weights of one sparse block, Hugging Face orientation
    ([out, in]): router [E, H] bf16; gate / up [E, I, H]; down [E, H, I]; bf16, or
    float8_e4m3fn with s_gate / s_up [E, cdiv(I, 128), cdiv(H, 128)] and
    s_down [E, cdiv(H, 128), cdiv(I, 128)] fp32 (`weight_scale_inv`: w = q * s)."""

    router: torch.Tensor
    gate: torch.Tensor
    up: torch.Tensor
    down: torch.Tensor
    s_gate: torch.Tensor | None = None
    s_up: torch.Tensor | None = None
    s_down: torch.Tensor | None = None

    @property
    def fp8(self) -> bool:
        return self.gate.dtype == torch.float8_e4m3fn

    @property
    def shape(self) -> tuple[int, int, int]:
        """(experts, hidden, intermediate)."""
        E, I, H = self.gate.shape
        return E, H, I

    def scales(self):
        """(s_gate, s_up, s_down) or None for bf16."""
        return (self.s_gate, self.s_up, self.s_down) if self.fp8 else None

    def to(self, device) -> MoeWeights:
        return MoeWeights(*(None if t is None else t.to(device) for t in
                            (self.router, self.gate, self.up, self.down, self.s_gate,
                             self.s_up, self.s_down)))

    def quantized(self) -> MoeWeights:
        """These bf16 weights as an FP8 checkpoint stores them (128x128 blocks)."""
        (g, sg), (u, su), (d, sd) = (quantize_blocks(w) for w in (self.gate, self.up,
                                                                   self.down))
        return MoeWeights(self.router, g, u, d, sg, su, sd)

    def check(self) -> None:
        """ValueError naming the first tensor whose shape or dtype does not fit."""
        E, H, I = self.shape
        nb = lambda n: -(-n // 128)  # noqa: E731
        want = {"router": ((E, H), (torch.bfloat16,)), "gate": ((E, I, H), None),
                "up": ((E, I, H), None), "down": ((E, H, I), None)}
        wdt = (torch.float8_e4m3fn,) if self.fp8 else (torch.bfloat16,)
        if self.fp8:
            want.update(s_gate=((E, nb(I), nb(H)), (torch.float32,)),
                        s_up=((E, nb(I), nb(H)), (torch.float32,)),
                        s_down=((E, nb(H), nb(I)), (torch.float32,)))
        for name, (shape, dts) in want.items():
            t = getattr(self, name)
            if t is None or tuple(t.shape) != shape or t.dtype not in (dts or wdt):
                got = "None" if t is None else f"{t.dtype} {list(t.shape)}"
                raise ValueError(f"MoeWeights.{name}: expected {(dts or wdt)[0]} "
                                 f"{list(shape)}, got {got}")
        if self.fp8 and (H % 128 or I % 128):
            raise ValueError(f"MoeWeights: FP8 needs hidden ({H}) and intermediate ({I}) "
                             f"sizes that are multiples of 128 (the activation groups)")


def random_moe_weights(E: int, H: int, I: int, seed: int = 0, fp8: bool = False
                       ) -> MoeWeights:
    """Random bf16 weights keeping activations O(1) (N(0, 1/in) per projection; the
    router N(0, 1/H)); fp8: the same weights quantised in 128x128 blocks."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: (torch.randn(*s, generator=g) / s[-1] ** 0.5).bfloat16()  # noqa: E731
    w = MoeWeights(r(E, H), r(E, I, H), r(E, I, H), r(E, H, I))
    return w.quantized() if fp8 else w


class MoeBlock:
    """The sparse MLP block of a Qwen3-MoE layer on one target (buffers kept per token
    count). tiles: constants overriding the defaults per kernel ("router", "sort",
    "gather", "gate_up", "quant", "quant_x", "down"; moe_gather runs where the sort's MOVE
    is False, moe_quant with FP8 weights). routed_tokens: up to this many tokens (default 1
    on CUDA with bf16 weights, else 0) the block is moe_router -> [FP8: moe_quant of the
    token rows, "quant_x"] -> moe_gate_up_routed -> [moe_quant] -> the down, without the
    sort: moe_down on the entry-order tile map (grouped_down: the default on CUDA with
    bf16 weights), or moe_down_routed without moe_down's workspace (tiles {"down":
    {"GROUPED": False}}; the default elsewhere). tune: on CUDA,
    each launch's num_warps / num_stages timed at its first call (mt.run_jit's tune), as
    the decoder layers do."""

    def __init__(self, w: MoeWeights, top_k: int, norm_topk_prob: bool = True,
                 target: str = "sim", compile_cfg: dict | None = None,
                 tiles: dict | None = None, tune: bool = True,
                 routed_tokens: int | None = None) -> None:
        w.check()
        self.w, self.top_k, self.norm_topk_prob = w, top_k, norm_topk_prob
        self.E, self.H, self.I = w.shape
        if not 1 <= top_k <= self.E:
            raise ValueError(f"MoeBlock: top_k {top_k} outside 1..{self.E} experts")
        self.backend = mt.get_backend(target)
        self.target = self.backend.name
        self.compile_cfg = dict(compile_cfg or {})
        self.tiles = dict(tiles or {})
        self.tune = tune and self.target == "cuda"
        # up to this many tokens the GEMMs read rows by the routing (no sort): one token's
        # experts differ, so each is read once either way (bf16 on CUDA; the FP8 form, its
        # token rows from moe_quant, was slower on an H100: 0.051 ms against 0.043 sorted)
        if routed_tokens is None:
            routed_tokens = 1 if self.target == "cuda" and not w.fp8 else 0
        self.routed_tokens = routed_tokens
        self.te = max(16, -(-self.E // 16) * 16)
        self._bufs: dict[int, dict] = {}
        self.per_kernel: dict[str, float] = {}
        # a list to record each launch's mt.Timeline in (the NPU timing model; sim only)
        self.timelines: list | None = None

    def consts(self, T: int) -> dict[str, dict]:
        """Constants of each launch for T tokens. On CUDA the row tile follows the rows
        per expert (T * top_k / E on average), decode takes narrow N tiles (more blocks
        streaming weights) and a split router, the copies move whole rows; elsewhere
        cube-sized tiles. The CUDA tiles are the best of benchmarks/moe_gpu.py --sweep
        on an H100 (30B-A3B shapes; docs/benchmarks.md); --tiles overrides them."""
        tm, tb = 16, 64
        # moe_sort: at decode sizes one launch ranking each entry against all (N^2
        # compares, no barrier); above, the chunked counting sort (a barrier, O(N))
        direct = T * self.top_k <= SORT_DIRECT_MAX
        gu, dn = dict(TN=128, TK=256), dict(TN=128, TK=256)
        router = dict(NE=self.E, TOPK=self.top_k, NORM_TOPK=self.norm_topk_prob,
                      TM=16, TE=self.te, TK=256)
        sort = dict(NE=self.E, TOPK=self.top_k, TE=self.te, DIRECT=direct)
        dn_extra = dict(TC=512)
        gather = dict(TOPK=self.top_k, RB=8)
        if self.target == "cuda":
            sms = mt.get_target(self.compile_cfg.get("arch") or "gpu").clusters
            avg = T * self.top_k / self.E
            fp8 = self.w.fp8
            tm = 16 if avg <= 16 else 32 if avg <= 48 else 64 if avg <= 128 or fp8 else 128
            if avg <= 16:  # decode: the dense layer's best GPU tiles at batch <= 8
                gu = dict(TN=32, TK=256 if avg < 0.25 else 128)
                dn = dict(TN=64, TK=256)
                if avg >= 1:  # from 1 row per expert on average: wider N tiles
                    gu = dict(gu, TN=64) if fp8 else gu
                    dn = dict(TN=128, TK=128)
            else:
                tk = {32: 128, 64: 64, 128: 64}[tm]
                gu, dn = dict(TN=64 if tm == 128 else 128, TK=tk), dict(TN=128, TK=tk)
                if not fp8:  # 4096 tokens bf16, H100 --sweep: gate/up in one K loop
                    # 0.516 ms vs 0.637; down with the bf16 workspace 0.351 vs 0.464
                    gu["ONE_LOOP"], dn["YS16"] = True, True
            # one work item per block where the tile map allows (more blocks than SMs
            # hide latency; the blocks past the live items do nothing); a power of two,
            # so that few token counts make a new kernel variant
            slots = K.tile_slots(T * self.top_k, self.E, tm)
            for d, n in ((gu, self.I), (dn, self.H)):
                items = slots * -(-n // d["TN"])
                d["GRID"] = min(1 << (items - 1).bit_length(), 8 * sms)
            # moe_sort copies a block's rows one after another: at decode one entry per
            # block, all in parallel; a row in one copy (whole rows, up to 4096 columns)
            tb = 1 if direct else 64
            if direct:  # 32-tile slices of the map: the one-block map (count + slices)
                # took 6.5 / 10.2 us with TT 32 against 8.2 / 12.1 with 64 at 8 / 32
                # tokens (H100, untuned, alone in a CUDA graph)
                sort["TT"] = 32
            row = 1 << (min(self.H, 4096).bit_length() - 1)
            sort["TH"] = gather["TH"] = row
            # the chunked sort's 264 blocks would move N / 264 rows each in turn:
            # moe_gather spreads them over blocks of 8
            sort["MOVE"] = direct
            dn_extra["TC"] = min(row, 1024)
            # the router: one block per 16 tokens reads the whole gate weight; at decode
            # that is one block, so the GEMM is split over experts and K (a second launch
            # selects): items of 16 experts x 512 columns
            if splits_router(T, sms):
                tk = min(512, 1 << (self.H.bit_length() - 1))
                ks = max(1, -(-self.H // tk))
                items = -(-T // 16) * (self.te // 16) * ks
                router.update(TK=tk, KS=ks, TEB=16,
                              GRID=min(1 << (items - 1).bit_length(), 8 * sms))
        gu = dict(gu, TM=tm)
        dn = dict(dn, TM=tm, TOPK=self.top_k, **dn_extra)
        if self.w.fp8:  # the K step is the 128 group
            del gu["TK"], dn["TK"]
        sort.update(TM=tm, TB=tb)
        dn_grouped = dict(dn, TM=16)  # the routed form's GROUPED down (moe_down, one row
        # per tile in entry order: the sorted form's down constants at this size)
        if self.routed(T):  # entries and tokens as row tiles of one live row each
            # CUDA: the best of an H100 --sweep at one token (bf16; 2026-12-06)
            cuda = self.target == "cuda"
            gu = dict(TN=32, TK=128) if cuda else {k: gu[k] for k in ("TN", "TK") if k in gu}
            dn = dict(TN=16, TK=256) if cuda else dict(TN=128, TK=256)
            for d, items in ((gu, T * self.top_k * -(-self.I // gu["TN"])),
                             (dn, T * -(-self.H // dn["TN"]))):
                d.update(TM=16, GRID=min(1 << (items - 1).bit_length(), 1024))
            if self.w.fp8:
                gu.pop("TK", None)
                dn.pop("TK", None)
        c = {"router": router, "sort": sort, "gather": gather, "gate_up": gu,
             "quant": dict(TR=64), "quant_x": dict(TR=64), "down": dn}
        if self.w.fp8:
            for k in ("sort", "gather"):
                c[k]["GT"] = self.H // 128
                c[k].pop("TH", None)  # the FP8 copy quantises a whole row already
        for k, v in self.tiles.items():
            if k not in c:
                raise ValueError(f"MoeBlock tiles: unknown kernel {k!r} (one of {list(c)})")
            c[k] = {**c[k], **v}
        c["down"].pop("GROUPED", None)
        if self.grouped_down(T):
            c["down"] = {**dn_grouped, **{k: v for k, v in self.tiles.get("down", {}).items()
                                          if k != "GROUPED"}}
        tms = {k: c[k]["TM"] for k in ("sort", "gate_up", "down")}
        # the tile map's row tiles are the GEMMs' row tiles (the routed form has no map)
        if len(set(tms.values())) > 1 and not self.routed(T):
            raise ValueError(f"MoeBlock tiles: TM differs between {tms}; moe_sort's row "
                             f"tiles are the grouped GEMMs' (give the same TM to all three)")
        return c

    def grouped_down(self, T: int) -> bool:
        """Whether the routed form's down is moe_down on the entry-order tile map (tiles
        {"down": {"GROUPED": ...}}; default on CUDA with bf16 weights: 10.6 us against
        moe_down_routed's 14.6 at one token, 30B-A3B, an H100 --sweep)."""
        if not self.routed(T):
            return False
        default = self.target == "cuda" and not self.w.fp8
        return bool(self.tiles.get("down", {}).get("GROUPED", default))

    def routed(self, T: int) -> bool:
        """Whether T tokens take the routed form (no sort; see routed_tokens; the tiles'
        "down" GROUPED applies to this form only)."""
        return T <= self.routed_tokens

    def _buffers(self, T: int, device) -> dict:
        if T not in self._bufs:
            E, H, I, k = self.E, self.H, self.I, self.top_k
            N = T * k
            if N >= 1 << 24:  # moe_sort's counts and rows are exact f32 integers
                raise ValueError(f"MoeBlock: {T} tokens x top {k} = {N} entries reach "
                                 f"2^24 (moe_sort counts in f32); split the tokens into "
                                 f"calls of at most {((1 << 24) - 1) // k}")
            if self.consts(T)["sort"]["DIRECT"] and N * self.te >= 1 << 24:
                raise ValueError(f"MoeBlock tiles: moe_sort DIRECT at {N} entries x "
                                 f"{self.te} expert slots passes 2^24 (its f32 keys "
                                 f"e * N + i); leave DIRECT to MoeBlock (False above "
                                 f"{SORT_DIRECT_MAX} entries)")
            mt_ = K.tile_slots(N, E, self.consts(T)["sort"]["TM"])
            i32 = dict(dtype=torch.int32, device=device)
            f32 = dict(dtype=torch.float32, device=device)
            bf = dict(dtype=torch.bfloat16, device=device)
            b = {"h3": torch.empty(T, H, **bf), "ids": torch.empty(T, k, **i32),
                 "wts": torch.empty(T, k, **f32), "pos": torch.empty(N, **i32),
                 "sw": torch.empty(N, 1, **f32), "tile_e": torch.empty(mt_, **i32),
                 "tile_r0": torch.empty(mt_, **i32), "tile_n": torch.empty(mt_, **i32),
                 "ntiles": torch.empty(1, **i32), "out": torch.empty(T, H, **bf),
                 "zeros": torch.zeros(T, H, **bf), "ones": torch.ones(H, **bf),
                 # the entry-order tile map (the routed form's GROUPED down): tile i is
                 # entry i's one row
                 "entry_r0": torch.arange(N, **i32), "entry_n": torch.ones(N, **i32),
                 "entry_nt": torch.full((1,), N, **i32)}
            if self.w.fp8:
                f8 = dict(dtype=torch.float8_e4m3fn, device=device)
                b.update(xs=torch.empty(N, H, **f8), xss=torch.empty(N, H // 128, **f32),
                         act=torch.empty(N, I, **bf), aq=torch.empty(N, I, **f8),
                         aqs=torch.empty(N, I // 128, **f32))
            else:
                b.update(xs=torch.empty(N, H, **bf), act=torch.empty(N, I, **bf))
            self._bufs[T] = b
        return self._bufs[T]

    def steps(self, x, res=None, norm=None) -> list[tuple]:
        """(name, kernel, args, constants) of each launch, in order."""
        T, H = x.shape
        w, b, c = self.w, self._buffers(T, x.device), self.consts(T)
        g, eps = norm if norm is not None else (b["ones"], 0.0)
        res = b["zeros"] if res is None else res
        h = b["h3"] if norm is not None else x
        mtile = (b["tile_e"], b["tile_r0"], b["tile_n"], b["ntiles"])
        route = ("router", K.moe_router, (x, g, w.router, b["h3"], b["ids"], b["wts"],
                                          float(eps)),
                 dict(c["router"], NORM_IN=norm is not None))
        sort_in = (b["ids"].view(-1), b["wts"].view(-1))
        head = (b["pos"], b["sw"]) + mtile
        if w.fp8:
            nb = H // 128
            rows = (b["xs"].view(-1, nb, 128), b["xss"].view(-1, nb, 1))
            sort = ("sort", K.moe_sort_fp8, sort_in + (h.view(T, nb, 128),) + head + rows,
                    c["sort"])
            gather = ("gather", K.moe_gather_fp8, (b["wts"].view(-1), h.view(T, nb, 128),
                                                   b["pos"], b["sw"]) + rows, c["gather"])
            gu = ("gate_up", K.moe_gate_up_fp8, (b["xs"], b["xss"], w.gate, w.up, w.s_gate,
                                                 w.s_up) + mtile + (b["act"],), c["gate_up"])
            ib = self.I // 128
            quant = ("quant", K.moe_quant, (b["act"].view(-1, 128), b["aq"].view(-1, 128),
                                            b["aqs"].view(-1, 1)), c["quant"])
            dn = ("down", K.moe_down_fp8, (b["aq"], b["aqs"].view(-1, ib), w.down, w.s_down,
                                           b["sw"]) + mtile + (b["pos"], res, b["out"]),
                  c["down"])
        else:
            sort = ("sort", K.moe_sort, sort_in + (h,) + head + (b["xs"],), c["sort"])
            gather = ("gather", K.moe_gather, (b["wts"].view(-1), h, b["pos"], b["sw"],
                                               b["xs"]), c["gather"])
            gu = ("gate_up", K.moe_gate_up, (b["xs"], w.gate, w.up) + mtile + (b["act"],),
                  c["gate_up"])
            dn = ("down", K.moe_down, (b["act"], w.down, b["sw"]) + mtile
                  + (b["pos"], res, b["out"]), c["down"])
        if self.routed(T):
            k, I = self.top_k, self.I
            h3, ids, wts = h.view(T, 1, H), b["ids"], b["wts"]
            if w.fp8:
                hb = H // 128
                xq, xqs = b["xs"][:T], b["xss"][:T]  # the token rows, quantised once
                qx = ("quant_x", K.moe_quant, (h.view(-1, 128), xq.view(-1, 128),
                                               xqs.view(-1, 1)), c["quant_x"])
                gu = ("gate_up", K.moe_gate_up_routed_fp8,
                      (xq.view(T, 1, H), xqs.view(T, 1, hb), ids, w.gate, w.up, w.s_gate,
                       w.s_up, b["act"].view(T, k, I)), c["gate_up"])
                dn = ("down", K.moe_down_routed_fp8,
                      (b["aq"].view(T, k, I), b["aqs"].view(T, k, I // 128), w.down,
                       w.s_down, ids, wts, res, b["out"]), c["down"])
            else:
                gu = ("gate_up", K.moe_gate_up_routed, (h3, ids, w.gate, w.up,
                                                        b["act"].view(T, k, I)), c["gate_up"])
                dn = ("down", K.moe_down_routed, (b["act"].view(T, k, I), w.down, ids, wts,
                                                  res, b["out"]), c["down"])
            if self.grouped_down(T):  # moe_down, entry-order tile map
                emap = (ids.view(-1), b["entry_r0"], b["entry_n"], b["entry_nt"])
                tail = emap + (b["entry_r0"], res, b["out"])  # pos: the identity
                sw = wts.view(-1, 1)
                dn = (("down", K.moe_down_fp8, (b["aq"], b["aqs"].view(-1, I // 128),
                                                w.down, w.s_down, sw) + tail, c["down"])
                      if w.fp8 else
                      ("down", K.moe_down, (b["act"], w.down, sw) + tail, c["down"]))
            return [route] + ([qx, gu, quant] if w.fp8 else [gu]) + [dn]
        steps = [route, sort] + ([] if c["sort"].get("MOVE", True) else [gather]) + [gu]
        return steps + ([quant] if w.fp8 else []) + [dn]

    def compile(self, T: int) -> float:
        """Compile every launch for T tokens (cached); returns the seconds it took."""
        t0 = time.perf_counter()
        x = torch.empty(T, self.H, dtype=torch.bfloat16, device=self.w.router.device)
        for _, kern, _, consts in self.steps(x):
            mt.compile(kern, self.compile_cfg, target=self.target, **consts)
        return time.perf_counter() - t0

    def routing(self, T: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids [T, top_k] int32, weights [T, top_k] fp32) of the last call with T tokens."""
        b = self._bufs[T]
        return b["ids"], b["wts"]

    def __call__(self, x: torch.Tensor, res: torch.Tensor | None = None,
                 norm: tuple | None = None) -> torch.Tensor:
        """out = res + moe(rmsnorm(x) * g) with norm = (g, eps), or res + moe(x) without
        (res defaults to zeros). Returns a buffer reused by the next call of this size."""
        self.per_kernel = {}
        if x.shape[0] == 0:  # no tokens: nothing to route
            return torch.empty_like(x) if res is None else res.clone()
        for name, kern, args, consts in self.steps(x, res, norm):
            r = mt.run_jit(kern, *args, target=self.target, compile_cfg=self.compile_cfg,
                           tune=self.tune, timeline=self.timelines is not None or None,
                           **consts)
            self.per_kernel[name] = r.run_s
            if self.timelines is not None:
                self.timelines.append(r.timeline)
        return self._bufs[x.shape[0]]["out"]
