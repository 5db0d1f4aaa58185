"""The mixtile MoE block against transformers' own Qwen3MoeSparseMoeBlock with the same
weights (skipped where transformers is not installed). transformers computes in bf16
(logits, gate / up / down outputs, the weighted sum); mixtile in fp32 with bf16 storage
points, so they agree within bf16 rounding. Tokens whose top-k sets differ (a tie or a
near-tie of the bf16 logits at the k-th place, which torch.topk breaks in no defined order)
are left out of the output comparison; there must be few."""
import pytest
import torch

transformers = pytest.importorskip("transformers")
from transformers.models.qwen3_moe import modeling_qwen3_moe as hf  # noqa: E402

from tilelang_models.qwen3.moe import MoeBlock, random_moe_weights  # noqa: E402
from tilelang_models.qwen3.moe_reference import routing_error  # noqa: E402


def _hf_block(w, top_k, norm_topk_prob):
    E, H, I = w.shape
    cfg = transformers.Qwen3MoeConfig(hidden_size=H, moe_intermediate_size=I,
                                      num_experts=E, num_experts_per_tok=top_k,
                                      norm_topk_prob=norm_topk_prob, hidden_act="silu")
    blk = hf.Qwen3MoeSparseMoeBlock(cfg).to(torch.bfloat16).eval()
    with torch.no_grad():
        blk.gate.weight.copy_(w.router)
        ex = blk.experts
        if hasattr(ex, "gate_up_proj"):  # transformers >= 5: experts as 3-d tensors
            ex.gate_up_proj.copy_(torch.cat([w.gate, w.up], 1))
            ex.down_proj.copy_(w.down)
        else:  # transformers 4: one module per expert
            for e, m in enumerate(ex):
                m.gate_proj.weight.copy_(w.gate[e])
                m.up_proj.weight.copy_(w.up[e])
                m.down_proj.weight.copy_(w.down[e])
    return blk


def _hf_topk(blk, x, top_k):
    """transformers' own expert choice (its router, its torch.topk)."""
    out = blk.gate(x)
    if isinstance(out, tuple) and len(out) == 3:  # transformers >= 5: (logits, w, ids)
        return out[2]
    p = torch.softmax(out.float(), -1)  # transformers 4: the gate is an nn.Linear
    return torch.topk(p, top_k).indices


@pytest.mark.parametrize("T,E,k,norm", [(1, 16, 4, True), (7, 24, 8, True),
                                        (64, 16, 2, False)])
def test_moe_block_matches_transformers(T, E, k, norm, gen):
    H, I = 256, 128
    w = random_moe_weights(E, H, I, seed=int(torch.randint(1 << 30, (1,), generator=gen)))
    x = torch.randn(T, H, generator=gen).bfloat16()
    blk = _hf_block(w, k, norm)
    with torch.no_grad():
        want = blk(x[None])
        want = (want[0] if isinstance(want, tuple) else want)[0].float()
        hf_ids = _hf_topk(blk, x, k)
    ours = MoeBlock(w, k, norm_topk_prob=norm)
    got = ours(x).float()
    ids, _ = ours.routing(T)
    assert routing_error(ids, x, w.router) <= 1e-2
    same = (ids.long().sort(-1).values == hf_ids.long().sort(-1).values).all(-1)
    assert same.float().mean() >= 0.85, f"{int((~same).sum())} of {T} tokens routed apart"
    err = (got[same] - want[same]).abs().max() / want.abs().max()
    assert err <= 3e-2, f"max |mixtile - transformers| / max |transformers| = {err}"
