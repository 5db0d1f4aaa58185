"""A vLLM-style paged KV cache for decode tests.

Layout (vLLM / flash-attn): ``k_cache, v_cache: [num_blocks, block_size, kv_heads, head_dim]``
bf16; ``block_table: [B, max_blocks]`` int32, entry j of row b the cache block that holds the
tokens ``j*block_size ... (j+1)*block_size - 1`` of sequence b; ``seq_lens: [B]`` int32, the
length of each sequence *including* the token being decoded (written at ``seq_lens[b] - 1``).

``make_paged_cache`` reserves block 0 as a null block: it is never given to a sequence, and
every unused ``block_table`` entry is 0, so a kernel that follows an unused entry reads
garbage (see below) rather than another sequence's data.
"""
from __future__ import annotations

import math

import torch

from .config import Qwen3Config

__all__ = ["make_paged_cache", "gather_kv", "GARBAGE"]

GARBAGE = 1.0e4
"""Value of every cache slot that holds no valid token (bf16: 9984.0)."""


def _assign_blocks(needs: list[int], pool: int, g: torch.Generator) -> list[list[int]]:
    """Distinct block ids from 1..pool for each sequence (``needs[b]`` of them), taken from a
    random permutation and redrawn until no sequence has two consecutive entries i, i+1
    (so a kernel assuming contiguous blocks fails)."""
    total = sum(needs)
    for _ in range(100):
        perm = (torch.randperm(pool, generator=g) + 1).tolist()[:total]
        out, s = [], 0
        for n in needs:
            out.append(perm[s:s + n])
            s += n
        if all(r[i + 1] != r[i] + 1 for r in out for i in range(len(r) - 1)):
            return out
    # unlikely fallback (tiny pools): descending ids are never ascending-adjacent
    ids = list(range(pool, 0, -1))[:total]
    out, s = [], 0
    for n in needs:
        out.append(ids[s:s + n])
        s += n
    return out


def make_paged_cache(cfg: Qwen3Config, seq_lens: list[int], block_size: int, seed: int,
                     extra_blocks: int = 3, cached: list[int] | None = None):
    """Random paged K/V caches for a decode step (or, with ``cached``, a chunked prefill
    step: sequence b then has ``cached[b]`` tokens in the cache and blocks for
    ``seq_lens[b]``).

    Returns ``(k_cache, v_cache, block_table, seq_lens_tensor)``:

    * ``k_cache``, ``v_cache``: ``[num_blocks, block_size, kv_heads, head_dim]`` bf16 with
      ``num_blocks = 1 + sum(ceil(L / block_size)) + extra_blocks`` (block 0 is the null
      block). Positions ``< seq_lens[b] - 1`` of each sequence hold N(0, 1) values; every
      other slot (the new token's slot, the tails of last blocks, the null and extra
      blocks) holds ``GARBAGE`` (1e4) so a kernel that reads them gets a visibly wrong
      answer.
    * ``block_table``: ``[B, max_blocks]`` int32, ``max_blocks = ceil(max(seq_lens) /
      block_size)``; each sequence's blocks are distinct across the batch, shuffled and
      never two consecutive ids in a row; unused entries are 0.
    * ``seq_lens_tensor``: ``[B]`` int32.

    Deterministic in ``seed``.
    """
    if not seq_lens or any(int(L) < 1 for L in seq_lens):
        raise ValueError(f"make_paged_cache: seq_lens must be non-empty and >= 1, "
                         f"got {seq_lens}")
    if block_size < 1 or extra_blocks < 0:
        raise ValueError(f"make_paged_cache: bad block_size {block_size} or "
                         f"extra_blocks {extra_blocks}")
    lens = [int(L) for L in seq_lens]
    have = [L - 1 for L in lens] if cached is None else [int(c) for c in cached]
    if len(have) != len(lens) or any(not 0 <= c <= L for c, L in zip(have, lens)):
        raise ValueError(f"make_paged_cache: cached {cached} must be 0..seq_lens {seq_lens}")
    needs = [math.ceil(L / block_size) for L in lens]
    pool = sum(needs) + extra_blocks
    num_blocks = 1 + pool
    max_blocks = max(needs)
    g = torch.Generator().manual_seed(int(seed))
    rows = _assign_blocks(needs, pool, g)
    table = torch.zeros(len(lens), max_blocks, dtype=torch.int32)
    for b, r in enumerate(rows):
        table[b, :len(r)] = torch.tensor(r, dtype=torch.int32)
    # valid[n, s]: slot s of block n holds a cached (already written) token
    valid = torch.zeros(num_blocks, block_size, dtype=torch.bool)
    for b, (c, r) in enumerate(zip(have, rows)):
        pos = torch.arange(c)
        blocks = torch.tensor(r, dtype=torch.long)[pos // block_size]
        valid[blocks, pos % block_size] = True
    nvalid = int(valid.sum())
    kv, D = cfg.num_key_value_heads, cfg.head_dim
    caches = []
    for _ in range(2):
        c = torch.full((num_blocks, block_size, kv, D), GARBAGE, dtype=torch.bfloat16)
        vals = torch.empty(nvalid, kv, D, dtype=torch.float32).normal_(generator=g)
        c[valid] = vals.to(torch.bfloat16)
        caches.append(c)
    return caches[0], caches[1], table, torch.tensor(lens, dtype=torch.int32)


def gather_kv(cache: torch.Tensor, block_table: torch.Tensor, b: int,
              length: int) -> torch.Tensor:
    """The first ``length`` tokens of sequence ``b`` in order:
    ``[length, kv_heads, head_dim]`` (a new tensor, same dtype as ``cache``)."""
    bs = cache.shape[1]
    nblk = math.ceil(length / bs)
    if nblk > block_table.shape[1]:
        raise ValueError(f"gather_kv: {length} tokens need {nblk} blocks, the table has "
                         f"{block_table.shape[1]}")
    ids = block_table[b, :nblk].long()
    return cache[ids].reshape(nblk * bs, *cache.shape[2:])[:length]
