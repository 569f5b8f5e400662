"""A small GPT-style transformer, written with plain layers so that FishLeg sees them:
every projection is an `nn.Linear` (the sweep's Q structure), embeddings and LayerNorms
get FishLeg's diagonal Q. Attention is spelled out (no fused kernel): FishLeg's Fisher
products use forward-mode autodiff through the model."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["CharTransformer"]


class CausalSelfAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, context: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.register_buffer("mask", torch.ones(context, context).tril().bool(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """x (B, T, d) → (B, T, d); position t attends to positions ≤ t."""
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(d // self.n_heads)
        scores = scores.masked_fill(~self.mask[:t, :t], float("-inf"))
        out = scores.softmax(-1) @ v  # (B, heads, T, d/heads)
        return self.proj(out.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, d_model: int, n_heads: int, context: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_heads, context)
        self.norm2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class CharTransformer(nn.Module):
    """Characters (B, T) → next-character logits (B·T, vocab), flattened so that the
    categorical likelihood (and FishLeg's Fisher) treat each position as one prediction."""

    def __init__(self, vocab: int, context: int, d_model: int, n_heads: int, n_layers: int) -> None:
        super().__init__()
        self.token = nn.Embedding(vocab, d_model)
        self.position = nn.Embedding(context, d_model)
        self.blocks = nn.Sequential(*(Block(d_model, n_heads, context) for _ in range(n_layers)))
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab)

    def forward(self, x: Tensor) -> Tensor:
        """x (B, T) character codes → logits (B·T, vocab)."""
        positions = torch.arange(x.shape[1], device=x.device)
        h = self.blocks(self.token(x) + self.position(positions))
        return self.head(self.norm(h)).flatten(0, 1)
