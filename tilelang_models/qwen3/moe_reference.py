"""Plain-torch golden of the Qwen3-MoE sparse block as the mixtile kernels compute it
(tilelang_models/qwen3/moe_kernels.py), bf16 and block-scaled FP8.

Storage points: logits = bf16(x @ router^T); p = softmax(logits) (fp32); the TOPK largest
p per token, ties to the lowest expert index (a stable descending sort), divided by their
sum (norm_topk_prob); per expert e and token row: act = bf16(silu(x @ Wg^T) * (x @ Wu^T))
(fp32 products); y = w * (act @ Wd^T) (fp32); out = bf16(res + sum over the slots in order).
FP8: x and act quantised per token in 1x128 groups (scale = max(amax, 1e-10) / 448, q =
e4m3(v / scale)); each product is sum over K blocks kb of (q_a[:, kb] @ q_w[:, kb]^T) *
scale_a[:, kb] * scale_w[n // 128, kb], accumulated in fp32; act is stored bf16 and
quantised from that.
"""
from __future__ import annotations

import torch

__all__ = ["route_ref", "routing_error", "quantize_rows", "dequantize_blocks",
           "quantize_blocks", "moe_ref", "scaled_mm_ref"]

FP8 = torch.float8_e4m3fn
FP8_MAX = 448.0
G = 128
AMAX_EPS = 1e-10


def route_ref(x: torch.Tensor, router: torch.Tensor, top_k: int, norm_topk_prob: bool = True
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids [T, top_k] int32, weights [T, top_k] fp32) of each token's experts."""
    logits = (x.float() @ router.float().T).to(torch.bfloat16).float()
    p = torch.softmax(logits, -1)
    order = torch.sort(p, dim=-1, descending=True, stable=True).indices[:, :top_k]
    w = torch.gather(p, 1, order)
    if norm_topk_prob:
        w = w / w.sum(-1, keepdim=True)
    return order.to(torch.int32), w


def routing_error(ids: torch.Tensor, x: torch.Tensor, router: torch.Tensor) -> float:
    """How far a routing `ids` [T, k] (a kernel's) is from the reference's top-k: the
    largest |p[ids] - p_topk| over the slots relative to the token's largest p (p the
    reference probabilities).
    0 when it is the reference's choice (ties in any order); a near-tie decided the other
    way by the fp32 summation order of a logit (its bf16 rounding flips) gives about one
    bf16 ulp (0.4%); a wrong choice gives O(1)."""
    p = torch.softmax((x.float() @ router.float().T).to(torch.bfloat16).float(), -1)
    top = torch.topk(p, ids.shape[1]).values
    got = torch.gather(p, 1, ids.long().cpu())
    return float(((got - top).abs() / top[:, :1]).max()) if ids.numel() else 0.0


def quantize_rows(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row 1x128-group e4m3 quantisation of [R, K] (K % 128 == 0): (q [R, K] e4m3,
    scales [R, K / 128] fp32)."""
    R, K = v.shape
    g = v.float().view(R, K // G, G)
    s = torch.clamp(g.abs().amax(-1, keepdim=True), min=AMAX_EPS) / FP8_MAX
    return (g / s).to(FP8).view(R, K), s.view(R, K // G)


def quantize_blocks(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """128x128 block e4m3 quantisation of a weight [..., N, K] as FP8 checkpoints store it:
    (q, scale_inv [..., cdiv(N, 128), cdiv(K, 128)] fp32) with w ~ q * scale_inv."""
    *lead, N, K = w.shape
    nb, kb = -(-N // G), -(-K // G)
    pad = torch.nn.functional.pad(w.float(), (0, kb * G - K, 0, nb * G - N))
    blocks = pad.view(*lead, nb, G, kb, G)
    s = torch.clamp(blocks.abs().amax((-3, -1)), min=AMAX_EPS) / FP8_MAX  # [..., nb, kb]
    q = (blocks / s[..., :, None, :, None]).to(FP8).view(*lead, nb * G, kb * G)
    return q[..., :N, :K].contiguous(), s


def dequantize_blocks(q: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """q * scale_inv per 128x128 block, fp32."""
    N, K = q.shape[-2:]
    e = s.repeat_interleave(G, -2).repeat_interleave(G, -1)[..., :N, :K]
    return q.float() * e


def scaled_mm_ref(aq, a_s, wq, w_s) -> torch.Tensor:
    """sum_kb (aq[:, kb] @ wq[:, kb]^T) * a_s[:, kb] * w_s[n // 128, kb] in fp32."""
    R, K = aq.shape
    N = wq.shape[0]
    out = torch.zeros(R, N)
    ws = w_s.repeat_interleave(G, 0)[:N]  # [N, KB]
    for kb in range(-(-K // G)):
        k = slice(kb * G, kb * G + G)
        out += (aq[:, k].float() @ wq[:, k].float().T) * a_s[:, kb:kb + 1] * ws[:, kb]
    return out


@torch.no_grad()
def moe_ref(x: torch.Tensor, router: torch.Tensor, w_gate, w_up, w_down, top_k: int,
            res: torch.Tensor | None = None, norm_topk_prob: bool = True,
            scales: tuple | None = None, routing: tuple | None = None) -> torch.Tensor:
    """The sparse block on x [T, H] (bf16, already normed): returns bf16 [T, H] =
    res + sum_j w_j * expert_{e_j}(x). w_gate / w_up [E, I, H], w_down [E, H, I] (bf16, or
    e4m3 with scales = (s_gate, s_up, s_down) of 128x128 blocks). routing: (ids, w) to
    use instead of route_ref's (a kernel's, checked with routing_error)."""
    T, H = x.shape
    ids, w = route_ref(x, router, top_k, norm_topk_prob) if routing is None else (
        routing[0].cpu().long(), routing[1].cpu().float())
    y = torch.zeros(T, top_k, H)
    if scales is not None:
        xq, xs = quantize_rows(x)
    for e in range(router.shape[0]):
        t, j = torch.nonzero(ids == e, as_tuple=True)
        if not len(t):
            continue
        if scales is None:
            xe = x[t].float()
            g = xe @ w_gate[e].float().T
            u = xe @ w_up[e].float().T
            a = (torch.nn.functional.silu(g) * u).to(torch.bfloat16).float()
            d = a @ w_down[e].float().T
        else:
            g = scaled_mm_ref(xq[t], xs[t], w_gate[e], scales[0][e])
            u = scaled_mm_ref(xq[t], xs[t], w_up[e], scales[1][e])
            a = (torch.nn.functional.silu(g) * u).to(torch.bfloat16).float()
            aq, a_s = quantize_rows(a)
            d = scaled_mm_ref(aq, a_s, w_down[e], scales[2][e])
        y[t, j] = d * w[t, j][:, None]
    acc = torch.zeros(T, H) if res is None else res.float()
    for j in range(top_k):  # slot order, as the kernel sums
        acc = acc + y[:, j]
    return acc.to(torch.bfloat16)
