"""A tiny vision transformer with a class token and a distillation token (DeiT).

Touvron, Cord, Douze, Massa, Sablayrolles & Jégou, "Training data-efficient image transformers &
distillation through attention", ICML 2021, arXiv:2012.12877, §4. Reference code:
facebookresearch/deit, ``models.py`` (``DistilledVisionTransformer``).

The image is cut into P×P patches, each linearly embedded (a stride-P convolution); a learned
class token and, for the distilled model, a learned distillation token are put in front, position
embeddings are added, and pre-norm transformer blocks mix all tokens by self-attention. After a
final LayerNorm the class token feeds the class head and the distillation token its own head.
During training the class head is taught by the labels and the distillation head by the teacher
(:mod:`kdcore.losses.deit`); the two tokens only meet through attention.

The logits of the model (what ``model(x)`` returns, in training and at test time alike) are the
mean of the two heads' logits, as the reference code's ``forward`` returns in eval mode
(``(x + x_dist) / 2``); in train mode that code returns the pair instead, a return type set by a
flag, which this project's single model interface replaces by the named features ``cls_logits``
and ``dist_logits``. The paper describes its late fusion as adding the two heads' softmax outputs;
the two rules can disagree on an image where the heads disagree, and the code's is the one here.

Sizes for MNIST: 7×7 patches give 16 tokens (+2), width 64, 2 blocks, 4 heads, MLP ratio 2:
about 73k parameters (72,852), against 0.42M for the ``cnn`` teacher.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .models import KDModel, ModelOutput


class Attention(nn.Module):
    """Multi-head self-attention (Vaswani et al. 2017) over all tokens, no mask."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape  # (B, N, D)
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads)  # (B, N, 3, H, D/H)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, H, N, D/H)
        out = F.scaled_dot_product_attention(q, k, v)  # softmax(q kᵀ / sqrt(D/H)) v
        return self.proj(out.transpose(1, 2).reshape(b, n, d))  # (B, N, D)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(LN(x)), then x + MLP(LN(x)) (ViT, DeiT)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)  # DeiT's eps
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyViT(KDModel):
    """A ViT with a class token and (``distilled=True``) a distillation token with its own head.

    ``forward_features`` gives the logits (the mean of both heads' logits; the class head's alone
    when there is no distillation token) and, in forward order: ``tokens`` (B, T, D), every token
    after the final LayerNorm with T = 1 + distilled + number of patches; ``cls_embedding`` and
    ``dist_embedding`` (B, D), the two special tokens' rows of it; ``cls_logits`` and
    ``dist_logits`` (B, K), each head's own logits; ``embedding`` (B, D), the class token's
    embedding, the image representation a ViT classifies from.
    """

    def __init__(
        self,
        image: int = 28,
        patch: int = 7,
        in_channels: int = 1,
        num_classes: int = 10,
        dim: int = 64,
        depth: int = 2,
        heads: int = 4,
        mlp_ratio: int = 2,
        distilled: bool = True,
    ):
        super().__init__()
        if image % patch:
            raise ValueError(f"a {image}-pixel image does not split into {patch}-pixel patches")
        self.distilled = distilled
        self.prefix = 2 if distilled else 1  # special tokens in front of the patches
        num_patches = (image // patch) ** 2
        self.patch_embed = nn.Conv2d(in_channels, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, dim)) if distilled else None
        self.pos_embed = nn.Parameter(torch.zeros(1, self.prefix + num_patches, dim))
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)
        self.head_dist = nn.Linear(dim, num_classes) if distilled else None
        # Truncated normal (std 0.02) for the tokens and positions, as DeiT and timm do: the two
        # special tokens must start apart, or they would see identical gradients at first.
        for p in (self.cls_token, self.dist_token, self.pos_embed):
            if p is not None:
                nn.init.trunc_normal_(p, std=0.02)

    def classifier(self) -> nn.Module | None:
        """The class head, unless a distillation head's logits are averaged in."""
        return self.head if self.head_dist is None else None

    def forward_features(self, x: torch.Tensor) -> ModelOutput:
        b = x.shape[0]
        h = self.patch_embed(x).flatten(2).transpose(1, 2)  # (B, N, D): one row per patch
        special = [self.cls_token.expand(b, -1, -1)]  # (B, 1, D)
        if self.dist_token is not None:
            special.append(self.dist_token.expand(b, -1, -1))
        h = torch.cat([*special, h], dim=1) + self.pos_embed  # (B, T, D)
        for block in self.blocks:
            h = block(h)
        h = self.norm(h)  # (B, T, D)
        cls_emb = h[:, 0]  # (B, D)
        cls_logits = self.head(cls_emb)  # (B, K)
        feats = {"tokens": h, "cls_embedding": cls_emb}
        if self.head_dist is None:
            feats.update(cls_logits=cls_logits, embedding=cls_emb)
            return ModelOutput(cls_logits, feats)
        dist_emb = h[:, 1]  # (B, D)
        dist_logits = self.head_dist(dist_emb)  # (B, K)
        feats.update(dist_embedding=dist_emb, cls_logits=cls_logits, dist_logits=dist_logits,
                     embedding=cls_emb)  # fmt: skip
        # Late fusion of the two heads, as the reference code's eval-mode forward.
        return ModelOutput((cls_logits + dist_logits) / 2, feats)


def _vit(distilled: bool, dim: int = 64, depth: int = 2, heads: int = 4):
    def build(num_classes: int = 10, in_shape: tuple[int, int, int] = (1, 28, 28)) -> KDModel:
        c, h, _ = in_shape
        # 4×4 patches of the image whatever its size: 16 tokens for MNIST (7 px) and CIFAR (8 px)
        return TinyViT(h, h // 4, c, num_classes, dim, depth, heads, 2, distilled)

    return build


# name -> builder(num_classes, in_shape); :func:`kdcore.models.build_model` builds these too.
VIT_MODELS = {
    "vit-tiny": _vit(distilled=True),  # class and distillation tokens (DeiT⚗)
    "vit-tiny-cls": _vit(distilled=False),  # class token only (ViT, DeiT without distillation)
}
