"""Masked autoencoder (He et al. 2022) used as BDMAE's restorer.

Module and parameter names follow the official MAE code, so an official checkpoint's
``model`` state dict loads without renaming (see ``load_official_mae``). The forward pass
takes an explicit token mask instead of drawing one:

    restored = mae(images, mask)   # (N, C, H, W) in [0, 1], (N, L) with 1 = masked

Masked tokens never reach the encoder: they are removed from every attention as keys, and
their encoder outputs are replaced by the mask token before the decoder, which is what
dropping them does (``tests/test_mae.py`` checks the equality). This form keeps one shape
for every mask, so a batch can mix masks with different token counts and the graph exports
to ONNX with a dynamic batch. The decoder predicts every patch; the output composites the
prediction into the input only where masked.

Images whose size differs from the MAE's (32x32 frames into a 224 MAE) follow the official
BDMAE path: bilinear up to the MAE size, MAE, nearest back down, composite at data size.
Grey frames (1 channel) go through a colour MAE as R = G = B and come back as the mean of
the restored channels, so grey models (gaze) need no MAE of their own.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class MAEConfig:
    """One MAE variant.

    Attributes:
        img_size: side of the square input the MAE works at (pixels).
        patch_size: side of one token (pixels); the grid is img_size / patch_size square.
        in_chans: image channels.
        embed_dim, depth, num_heads: encoder width, blocks and heads.
        decoder_embed_dim, decoder_depth, decoder_num_heads: the same for the decoder.
        mlp_ratio: hidden width of the MLPs relative to the embedding.
        mean, std: the pixel normalisation the MAE was trained in (ImageNet statistics).
    """

    img_size: int = 224
    patch_size: int = 16
    in_chans: int = 3
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    decoder_embed_dim: int = 512
    decoder_depth: int = 8
    decoder_num_heads: int = 16
    mlp_ratio: float = 4.0
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    @property
    def grid(self) -> int:
        """Tokens per side."""
        return self.img_size // self.patch_size

    @property
    def num_tokens(self) -> int:
        return self.grid ** 2


def sincos_pos_embed(dim: int, grid: int, cls_token: bool = True) -> np.ndarray:
    """Fixed 2-D sine-cosine position embedding, (grid*grid [+1], dim), as in MAE."""
    if dim % 4:
        raise ValueError(f"embedding dim must be divisible by 4, got {dim}")
    omega = 1.0 / 10000 ** (np.arange(dim // 4, dtype=np.float64) / (dim / 4.0))
    gy, gx = np.meshgrid(np.arange(grid, dtype=np.float64), np.arange(grid, dtype=np.float64), indexing="ij")
    # Official order: the first half embeds the column index (w), the second the row (h).
    halves = []
    for pos in (gx.reshape(-1), gy.reshape(-1)):
        out = np.einsum("m,d->md", pos, omega)
        halves.append(np.concatenate([np.sin(out), np.cos(out)], axis=1))
    emb = np.concatenate(halves, axis=1)
    if cls_token:
        emb = np.concatenate([np.zeros((1, dim)), emb], axis=0)
    return emb.astype(np.float32)


class PatchEmbed(nn.Module):
    """(N, C, H, W) -> (N, L, D) with one strided convolution."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, key_bias: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x (N, T, D); key_bias (N, 1, 1, T) added to the attention logits (-inf hides a key)."""
        n, t, d = x.shape
        q, k, v = self.qkv(x).reshape(n, t, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        logits = (q @ k.transpose(-2, -1)) * (d // self.num_heads) ** -0.5
        if key_bias is not None:
            logits = logits + key_bias
        out = logits.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(n, t, d))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block (timm ``Block`` layout: norm1, attn, norm2, mlp)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, key_bias: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), key_bias)
        return x + self.mlp(self.norm2(x))


def restorer_flops(config: MAEConfig, visible: int, drop_masked: bool = True) -> int:
    """Multiply-add FLOPs (2 per MAC) of one restoration with ``visible`` visible tokens:
    patch embedding, encoder, decoder and prediction matmuls, attention included; norms,
    softmax and activations left out. ``drop_masked=False``: the encoder runs on all tokens.

    >>> from edgeguard.models import create_model
    >>> tiny = create_model("mae_tiny_patch4").config     # 8x8 tokens; stage 1 leaves 16 visible
    >>> round(restorer_flops(tiny, 16, drop_masked=False) / restorer_flops(tiny, 16), 2)
    2.51
    """
    c = config
    length, patch = c.num_tokens, c.patch_size ** 2 * c.in_chans

    def blocks(tokens: int, dim: int, depth: int) -> int:
        hidden = int(dim * c.mlp_ratio)
        return depth * (2 * tokens * (4 * dim * dim + 2 * dim * hidden) + 4 * tokens * tokens * dim)

    encoder_tokens = 1 + (visible if drop_masked else length)
    return (2 * length * patch * c.embed_dim + blocks(encoder_tokens, c.embed_dim, c.depth)
            + 2 * (1 + length) * c.embed_dim * c.decoder_embed_dim
            + blocks(1 + length, c.decoder_embed_dim, c.decoder_depth) + 2 * (1 + length) * c.decoder_embed_dim * patch)


def _key_bias(visible: torch.Tensor) -> torch.Tensor:
    """(N, T) 1 = visible -> (N, 1, 1, T) attention bias that hides the others as keys."""
    return torch.where(visible > 0, 0.0, float("-inf")).to(visible.dtype)[:, None, None, :]


class MaskedAutoencoder(nn.Module):
    """ViT MAE with an explicit token mask; see the module docstring.

    ``forward(images, mask)``: images (N, C, h, w) float in [0, 1] at any size (C the MAE's
    channels, or 1 for a colour MAE), mask (N, L)
    float/bool with 1 = masked (L = config.num_tokens, row-major over the token grid);
    returns (N, C, h, w) with masked pixels restored and the others unchanged (no clamping,
    as in BDMAE).
    """

    # The encoder runs on the visible tokens only (False: on all tokens, masked ones hidden
    # from attention; the same restorations, more FLOPs). Not part of MAEConfig: it changes
    # the computation, not the model or its weights.
    drop_masked: bool = True

    def __init__(self, config: MAEConfig = MAEConfig()):
        super().__init__()
        self.config = c = config
        if c.img_size % c.patch_size:
            raise ValueError(f"img_size {c.img_size} is not a multiple of patch_size {c.patch_size}")
        self.patch_embed = PatchEmbed(c.patch_size, c.in_chans, c.embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.embed_dim))
        self.pos_embed = nn.Parameter(torch.from_numpy(sincos_pos_embed(c.embed_dim, c.grid))[None],
                                      requires_grad=False)
        self.blocks = nn.ModuleList(Block(c.embed_dim, c.num_heads, c.mlp_ratio) for _ in range(c.depth))
        self.norm = nn.LayerNorm(c.embed_dim, eps=1e-6)
        self.decoder_embed = nn.Linear(c.embed_dim, c.decoder_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, c.decoder_embed_dim))
        self.decoder_pos_embed = nn.Parameter(
            torch.from_numpy(sincos_pos_embed(c.decoder_embed_dim, c.grid))[None], requires_grad=False)
        self.decoder_blocks = nn.ModuleList(
            Block(c.decoder_embed_dim, c.decoder_num_heads, c.mlp_ratio) for _ in range(c.decoder_depth))
        self.decoder_norm = nn.LayerNorm(c.decoder_embed_dim, eps=1e-6)
        self.decoder_pred = nn.Linear(c.decoder_embed_dim, c.patch_size ** 2 * c.in_chans)
        self.register_buffer("pixel_mean", torch.tensor(c.mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(c.std).view(1, -1, 1, 1), persistent=False)
        self._init_weights()

    def _init_weights(self) -> None:
        w = self.patch_embed.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    # -- pieces ---------------------------------------------------------------------------
    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, S, S) -> (N, L, P*P*C), official order (p, q, c) within a patch."""
        p, g, c = self.config.patch_size, self.config.grid, self.config.in_chans
        x = x.reshape(x.shape[0], c, g, p, g, p)
        return torch.einsum("nchpwq->nhwpqc", x).reshape(x.shape[0], g * g, p * p * c)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """(N, L, P*P*C) -> (N, C, S, S)."""
        p, g, c = self.config.patch_size, self.config.grid, self.config.in_chans
        x = x.reshape(x.shape[0], g, g, p, p, c)
        return torch.einsum("nhwpqc->nchpwq", x).reshape(x.shape[0], c, g * p, g * p)

    def encode(self, x: torch.Tensor, key_bias: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Tokens (N, T, D) with position embeddings, cls first -> encoder output (N, T, D)."""
        for block in self.blocks:
            x = block(x, key_bias)
        return self.norm(x)

    def decode(self, latent: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        """Encoder output over all L tokens (+cls) and the (N, L) mask -> (N, L, P*P*C)
        predictions in the MAE's normalised pixel space."""
        x = self.decoder_embed(latent)
        m = masked[..., None].to(x.dtype)
        tokens = x[:, 1:] * (1 - m) + self.mask_token.to(x.dtype) * m
        x = torch.cat([x[:, :1], tokens], dim=1) + self.decoder_pos_embed
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]

    def embed(self, normed: torch.Tensor) -> torch.Tensor:
        """MAE-normalised (N, C, S, S) -> (N, 1 + L, D) tokens with position embeddings."""
        x = self.patch_embed(normed) + self.pos_embed[:, 1:]
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1)
        return torch.cat([cls, x], dim=1)

    def predict(self, normed: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """MAE-normalised input (N, C, S, S), mask (N, L) -> predicted patches (N, L, P*P*C)."""
        masked = mask.to(normed.dtype)
        tokens = self.embed(normed)
        if not self.drop_masked:
            visible = torch.cat([torch.ones_like(masked[:, :1]), 1 - masked], dim=1)
            return self.decode(self.encode(tokens, _key_bias(visible)), masked)
        # The encoder sees only the V tokens of the row with the most visible ones (V = 16 of
        # 64 for every stage-1 mask): each row gathers its visible tokens first, in grid order,
        # and hides the masked ones it had to take to fill V as keys, as the full form does.
        # V comes from a shape, so it stays dynamic in the ONNX graph (NonZero, TopK).
        n, length = masked.shape
        position = torch.arange(length, device=masked.device)
        most = torch.clamp((1 - masked).sum(dim=1).max(), min=1)
        v = torch.nonzero(position < most).shape[0]
        order = torch.topk((1 - masked) * length - position.to(masked.dtype), v, dim=1).indices  # (N, V)
        index = order[..., None].expand(-1, -1, tokens.shape[-1])
        kept = torch.cat([tokens[:, :1], torch.gather(tokens[:, 1:], 1, index)], dim=1)
        visible = torch.cat([torch.ones_like(masked[:, :1]), 1 - torch.gather(masked, 1, order)], dim=1)
        latent = self.encode(kept, _key_bias(visible))
        # Masked places keep zeros: decode replaces them by the mask token.
        placed = torch.zeros_like(tokens[:, 1:]).scatter(1, index, latent[:, 1:])
        return self.decode(torch.cat([latent[:, :1], placed], dim=1), masked)

    def pixel_mask(self, mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """(N, L) token mask -> (N, 1, h, w) pixel mask at data size (nearest, as BDMAE)."""
        g, s = self.config.grid, self.config.img_size
        m = mask.to(torch.float32).reshape(-1, 1, g, g)
        m = m.repeat_interleave(self.config.patch_size, 2).repeat_interleave(self.config.patch_size, 3)
        return m if tuple(size) == (s, s) else F.interpolate(m, size=size, mode="nearest")

    # -- the restorer ---------------------------------------------------------------------
    def forward(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h, w = images.shape[-2:]
        s = self.config.img_size
        x = images if (h, w) == (s, s) else F.interpolate(images, size=(s, s), mode="bilinear", align_corners=False)
        grey = images.shape[1] == 1 and self.config.in_chans == 3
        if grey:  # a grey frame is the colour frame with R = G = B; its restoration, their mean
            x = x.expand(-1, 3, -1, -1)
        pred = self.unpatchify(self.predict((x - self.pixel_mean) / self.pixel_std, mask))
        if (h, w) != (s, s):
            pred = F.interpolate(pred, size=(h, w), mode="nearest")
        pred = pred * self.pixel_std + self.pixel_mean
        if grey:
            pred = pred.mean(dim=1, keepdim=True)
        m = self.pixel_mask(mask, (h, w)).to(images.dtype)
        return images * (1 - m) + pred * m

    def loss(self, images: torch.Tensor, mask_ratio: float = 0.75,
             generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """MAE pre-training loss: MSE on masked patches (normalised pixels) for random masks
        at ``mask_ratio``. images (N, C, S, S) in [0, 1] at the MAE's own size."""
        n, length = images.shape[0], self.config.num_tokens
        keep = max(1, int(length * (1 - mask_ratio)))
        noise = torch.rand(n, length, generator=generator, device=images.device)
        ids_keep = noise.argsort(dim=1)[:, :keep]
        mask = torch.ones(n, length, device=images.device).scatter_(1, ids_keep, 0.0)
        normed = (images - self.pixel_mean) / self.pixel_std
        # Training drops the masked tokens for speed (equal counts per image).
        tokens = self.embed(normed)
        index = ids_keep[..., None].expand(-1, -1, tokens.shape[-1])
        visible = torch.gather(tokens[:, 1:], 1, index)
        latent_visible = self.encode(torch.cat([tokens[:, :1], visible], dim=1))
        placed = torch.zeros_like(tokens[:, 1:]).scatter(1, index, latent_visible[:, 1:])
        latent = torch.cat([latent_visible[:, :1], placed], dim=1)
        pred = self.decode(latent, mask)
        err = ((pred - self.patchify(normed)) ** 2).mean(dim=-1)
        return (err * mask).sum() / mask.sum()


__all__ = ["MAEConfig", "MaskedAutoencoder", "restorer_flops", "sincos_pos_embed",
           "IMAGENET_MEAN", "IMAGENET_STD"]
