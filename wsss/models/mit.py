"""Mix Transformer (MiT), the hierarchical encoder of SegFormer (Xie et al., NeurIPS 2021), in plain torch.

Four stages; each starts with an *overlapping* patch embedding (a strided conv: 7x7 stride 4, then
3x3 stride 2) followed by LayerNorm, then transformer blocks, then a LayerNorm. A block is

    x = x + Attention(LN(x))      efficient self-attention: keys/values come from the tokens shrunk
                                  by a strided R x R conv (R = sr_ratio), so the cost is N * N / R^2
    x = x + MixFFN(LN(x))         Linear -> 3x3 depthwise conv (positional information) -> GELU -> Linear

forward(x (B, 3, H, W)) -> [c1 (B, C1, H/4, W/4), c2 (B, C2, H/8, W/8), c3 (B, C3, H/16, W/16),
c4 (B, C4, H/s4, W/s4)], with s4 = 32 (SegFormer) or 16 when the last patch embedding has stride 1
(AFA / TSCD: strides [4, 2, 2, 1]). ``forward(x, return_attn=True)`` also returns the attention
*logits* q k^T (unscaled, as AFA takes them) of the last stage's blocks, each (B, heads, N, N) with
N = (H/s4) * (W/s4) (sr_ratio is 1 there); the attention the model uses is their softmax after
multiplying by the block's ``attn.scale`` (1 / sqrt(head dim)).

The module names follow the official SegFormer code except that the per-stage modules are lists
(``patch_embed1`` -> ``patch_embeds.0``, ``block1.0`` -> ``blocks.0.0``, ``norm1`` -> ``norms.0``);
``wsss.models.pretrained`` maps the official and the Hugging Face (``nvidia/mit-b*``) layouts onto it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.ops import StochasticDepth


@dataclass(frozen=True)
class MiTConfig:
    dims: tuple[int, int, int, int]
    depths: tuple[int, int, int, int]
    heads: tuple[int, int, int, int]
    sr_ratios: tuple[int, int, int, int] = (8, 4, 2, 1)
    mlp_ratio: int = 4
    drop_path_rate: float = 0.1                              # SegFormer's stochastic depth, linear in depth


CONFIGS = {
    "mit_b0": MiTConfig(dims=(32, 64, 160, 256), depths=(2, 2, 2, 2), heads=(1, 2, 5, 8)),
    "mit_b1": MiTConfig(dims=(64, 128, 320, 512), depths=(2, 2, 2, 2), heads=(1, 2, 5, 8)),
    "mit-tiny": MiTConfig(dims=(16, 32, 64, 128), depths=(1, 1, 1, 1), heads=(1, 1, 2, 4), drop_path_rate=0.0),
}


class OverlapPatchEmbed(nn.Module):
    """k x k conv with stride s and padding k // 2, then LayerNorm: (B, Cin, H, W) -> (B, h*w, C), h, w."""

    def __init__(self, cin: int, dim: int, kernel: int, stride: int):
        super().__init__()
        self.proj = nn.Conv2d(cin, dim, kernel, stride, padding=kernel // 2)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        x = self.proj(x)                                     # (B, C, h, w)
        h, w = x.shape[2:]
        return self.norm(x.flatten(2).transpose(1, 2)), h, w  # (B, N, C)


class EfficientSelfAttention(nn.Module):
    """Multi-head attention whose keys/values are computed on tokens reduced by ``sr_ratio`` per side."""

    def __init__(self, dim: int, heads: int, sr_ratio: int):
        super().__init__()
        self.heads, self.sr_ratio = heads, sr_ratio
        self.scale = (dim // heads) ** -0.5                  # the softmax's temperature: 1 / sqrt(head dim)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)                    # keys then values, as in the official code
        self.proj = nn.Linear(dim, dim)
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, h: int, w: int, return_attn: bool = False):
        B, N, C = x.shape
        d = C // self.heads
        q = self.q(x).reshape(B, N, self.heads, d).transpose(1, 2)            # (B, heads, N, d)
        if self.sr_ratio > 1:
            x = x.transpose(1, 2).reshape(B, C, h, w)
            if h < self.sr_ratio or w < self.sr_ratio:     # a map smaller than R (a small second view): border repeated up to R
                x = F.pad(x, [0, max(0, self.sr_ratio - w), 0, max(0, self.sr_ratio - h)], mode="replicate")
            x = self.sr(x)                                                    # (B, C, h/R, w/R)
            x = self.norm(x.flatten(2).transpose(1, 2))                       # (B, N', C)
        k, v = self.kv(x).reshape(B, -1, 2, self.heads, d).permute(2, 0, 3, 1, 4)  # 2 x (B, heads, N', d)
        if return_attn:
            # the logits $q k^T$, unscaled, for the caller (AFA's affinity); the attention used is
            # $A = \mathrm{softmax}(q k^T \cdot \mathrm{scale})$, scale = 1 / \sqrt{d}
            logits = q @ k.transpose(-2, -1)                                    # (B, heads, N, N')
            attn, out = logits, (logits * self.scale).softmax(dim=-1) @ v
        else:
            attn, out = None, F.scaled_dot_product_attention(q, k, v)         # same numbers, fused kernel
        out = out.transpose(1, 2).reshape(B, N, C)
        return self.proj(out), attn


class MixFFN(nn.Module):
    """Linear -> 3x3 depthwise conv on the token grid -> GELU -> Linear. (B, N, C) -> (B, N, C)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        x = self.fc1(x)                                                       # (B, N, 4C)
        B, N, C = x.shape
        x = self.dwconv(x.transpose(1, 2).reshape(B, C, h, w)).flatten(2).transpose(1, 2)
        return self.fc2(F.gelu(x))


class Block(nn.Module):
    """Pre-norm transformer block with efficient attention and Mix-FFN, stochastic depth on both branches."""

    def __init__(self, dim: int, heads: int, sr_ratio: int, mlp_ratio: int, drop_path: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = EfficientSelfAttention(dim, heads, sr_ratio)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MixFFN(dim, dim * mlp_ratio)
        self.drop_path = StochasticDepth(drop_path, mode="row")

    def forward(self, x: torch.Tensor, h: int, w: int, return_attn: bool = False):
        a, attn = self.attn(self.norm1(x), h, w, return_attn)
        x = x + self.drop_path(a)
        x = x + self.drop_path(self.mlp(self.norm2(x), h, w))
        return x, attn


class MixTransformer(nn.Module):
    """The MiT encoder. ``output_stride`` 32 (SegFormer), 16 (AFA / TSCD: the last patch embedding with
    stride 1), or 8 and 4 (the last two, three with stride 1: our small-image profiles, where a 64 px image
    at stride 16 would leave a 4 x 4 map)."""

    def __init__(self, config: MiTConfig, output_stride: int = 32):
        super().__init__()
        cfg = config
        strides = {32: [4, 2, 2, 2], 16: [4, 2, 2, 1], 8: [4, 2, 1, 1], 4: [4, 1, 1, 1]}[output_stride]
        kernels = [7, 3, 3, 3]
        rates = torch.linspace(0, cfg.drop_path_rate, sum(cfg.depths)).tolist()
        self.patch_embeds, self.blocks, self.norms = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        cin = 3
        for i, dim in enumerate(cfg.dims):
            self.patch_embeds.append(OverlapPatchEmbed(cin, dim, kernels[i], strides[i]))
            first = sum(cfg.depths[:i])
            self.blocks.append(nn.ModuleList(
                Block(dim, cfg.heads[i], cfg.sr_ratios[i], cfg.mlp_ratio, rates[first + j])
                for j in range(cfg.depths[i])))
            self.norms.append(nn.LayerNorm(dim, eps=1e-6))
            cin = dim
        self.out_channels = list(cfg.dims)
        self.strides = [math.prod(strides[:i + 1]) for i in range(4)]
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        """SegFormer's initialisation: truncated normal (std 0.02) for Linear, He normal (fan-out) for conv."""
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, return_attn: bool = False):
        B = x.shape[0]
        features, attns = [], []
        last = len(self.blocks) - 1
        for i, (embed, blocks, norm) in enumerate(zip(self.patch_embeds, self.blocks, self.norms)):
            x, h, w = embed(x)                                        # (B, N_i, C_i)
            for block in blocks:
                x, attn = block(x, h, w, return_attn and i == last)
                if attn is not None:
                    attns.append(attn)                                # (B, heads, N_4, N_4)
            x = norm(x).transpose(1, 2).reshape(B, -1, h, w)          # (B, C_i, H/s_i, W/s_i)
            features.append(x)
        return (features, attns) if return_attn else features
