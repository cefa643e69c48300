"""The float teacher (stories260K, `llama`) and the ternary student (`bitnet-b1.58`) in PyTorch.

The student's forward computes exactly what bitrun's core/src/model/transformer.cpp computes for a `bitnet-b1.58` file
loaded with its defaults, with straight-through estimators so it can be trained:
  token_embd (float) -> per layer: RMSNorm -> int8 per-token absmax activations -> ternary Q/K/V (per-tensor
  absmean scale) -> NEOX RoPE -> K/V rounded to fp16 (bitrun's KV cache) -> GQA attention -> SubLN RMSNorm ->
  int8 -> ternary attn_output -> residual; RMSNorm -> int8 -> ternary gate/up -> relu(gate)^2 * up -> SubLN
  RMSNorm -> int8 -> ternary down -> residual; final RMSNorm -> int8 -> output matrix quantized to int8 per row
  (bitrun's int8_output for ternary architectures).
"""

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class Shape:
    n_vocab: int
    dim: int
    n_layer: int
    n_head: int
    n_head_kv: int
    n_ff: int
    rms_eps: float = 1e-5
    rope_base: float = 10000.0

    @property
    def head_dim(self):
        return self.dim // self.n_head


def rms_norm(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def rope_tables(positions, head_dim, base):
    """cos and sin of the angles pos * base^(-2i/d), i < d/2, computed in float64 like bitrun; [..., seq, 1, d/2]."""
    inv = base ** (-torch.arange(0, head_dim // 2, dtype=torch.float64) * 2.0 / head_dim)
    theta = positions.to(torch.float64)[..., None] * inv
    return theta.cos().float().unsqueeze(-2), theta.sin().float().unsqueeze(-2)


def rope(x, tables, neox):
    """x: [batch, seq, heads, head_dim]. Rotates pairs (i, i + d/2) (NEOX, the bitnet architectures) or
    (2i, 2i + 1) (llama's adjacent pairs)."""
    cos, sin = tables
    d = x.shape[-1]
    if neox:
        x0, x1 = x[..., : d // 2], x[..., d // 2:]
        return torch.cat([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1)
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1).flatten(-2)


def mask_bias(mask):
    """Bool mask (True = may attend) as an additive bias: 0 or -inf."""
    return torch.zeros(mask.shape).masked_fill_(~mask, float("-inf"))


def attention(q, k, v, bias):
    """q: [b, t, h, hd]; k, v: [b, s, hkv, hd]; bias: [t, s] from mask_bias. Query head h uses KV head
    h // (h / hkv), as bitrun's attention kernel."""
    b, s, hkv, hd = k.shape
    return attend(q, k.permute(0, 2, 3, 1).reshape(b * hkv, hd, s), v.permute(0, 2, 1, 3).reshape(b * hkv, s, hd),
                  bias)


def attend(q, kt, v, bias):
    """Attention with K already as [b * hkv, hd, s] and V as [b * hkv, s, hd]: the g = h / hkv query heads of a
    KV head are stacked along the rows, so K/V are never copied per head, and the bias is added inside the
    batched matmul."""
    b, t, h, hd = q.shape
    hkv = kt.shape[0] // b
    g = h // hkv
    q = (q * (1.0 / math.sqrt(hd))).view(b, t, hkv, g, hd).permute(0, 2, 3, 1, 4).reshape(b * hkv, g * t, hd)
    p = torch.baddbmm(bias.repeat(g, 1), q, kt).softmax(-1)
    return (p @ v).view(b, hkv, g, t, hd).permute(0, 3, 1, 2, 4).reshape(b, t, h, hd)


def causal_mask(n):
    return torch.ones(n, n, dtype=torch.bool).tril()


# ---------------------------------------------------------------------------------------------------------------
# Quantizers with straight-through estimators: the forward pass uses the quantized value, the backward pass the
# identity. Each is one autograd node so that training does not record the quantizer's own arithmetic.

class _StraightThrough(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, quantize):
        with torch.no_grad():
            return quantize(x)

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def ste(x, quantize):
    return _StraightThrough.apply(x, quantize)


def ternary_weight(w):
    """Per-tensor absmean ternarization (BitNet b1.58): codes round(w / mean|w|) clamped to [-1, 1]."""
    s = w.abs().mean().clamp(min=1e-5)
    return (w / s).round().clamp(-1, 1), s


def _ternary(w):
    codes, s = ternary_weight(w)
    return codes * s


def _int8_rows(x):
    # bitrun's quantize_group: inv = 127 / max(absmax, 1e-5), q = round-half-even(x * inv), value q * absmax / 127.
    absmax = x.abs().amax(-1, keepdim=True).clamp(min=1e-5)
    return (x * (127.0 / absmax)).round().clamp(-127, 127) * (absmax / 127.0)


def _int8_output_matrix(w):
    # The loader scales each output row by absmax / 127 and stores round(w / scale); a zero row stays zero.
    scale = w.abs().amax(-1, keepdim=True) / 127.0
    return (w * (1.0 / scale.clamp(min=1e-30))).round().clamp(-127, 127) * scale


def _fp16(x):
    return x.half().float()


def fake_ternary(w):
    return ste(w, _ternary)


def fake_int8_rows(x):
    """Per-row absmax int8 (bitrun's activations), round half to even."""
    return ste(x, _int8_rows)


def fake_int8_output_matrix(w):
    return ste(w, _int8_output_matrix)


def fake_fp16(x):
    return ste(x, _fp16)


# ---------------------------------------------------------------------------------------------------------------

class Teacher(nn.Module):
    """stories260K as bitrun runs it (`llama`: float weights, SiLU, adjacent-pair RoPE), from its GGUF tensors."""

    def __init__(self, meta, tensors):
        super().__init__()
        a = meta["general.architecture"]
        self.shape = Shape(n_vocab=tensors["token_embd.weight"].shape[0], dim=meta[a + ".embedding_length"],
                           n_layer=meta[a + ".block_count"], n_head=meta[a + ".attention.head_count"],
                           n_head_kv=meta[a + ".attention.head_count_kv"], n_ff=meta[a + ".feed_forward_length"],
                           rms_eps=float(meta.get(a + ".attention.layer_norm_rms_epsilon", 1e-5)),
                           rope_base=float(meta.get(a + ".rope.freq_base", 10000.0)))
        self.w = {k: torch.from_numpy(v.copy()) for k, v in tensors.items()}
        self.requires_grad_(False)

    @torch.no_grad()
    def forward(self, tokens, cache=None):
        """tokens [b, t] -> logits [b, t, vocab] under causal attention. With a KvCache, tokens continue the
        cached sequences (used to sample from the teacher one token at a time)."""
        s, w = self.shape, self.w
        b, t = tokens.shape
        past = cache.length if cache is not None else 0
        x = w["token_embd.weight"][tokens]
        tables = rope_tables(torch.arange(past, past + t), s.head_dim, s.rope_base)
        bias = mask_bias(torch.ones(t, past + t, dtype=torch.bool).tril(diagonal=past))
        for l in range(s.n_layer):
            p = "blk.%d." % l
            h = rms_norm(x, w[p + "attn_norm.weight"], s.rms_eps)
            q = (h @ w[p + "attn_q.weight"].T).view(b, t, s.n_head, s.head_dim)
            k = (h @ w[p + "attn_k.weight"].T).view(b, t, s.n_head_kv, s.head_dim)
            v = (h @ w[p + "attn_v.weight"].T).view(b, t, s.n_head_kv, s.head_dim)
            q, k = rope(q, tables, False), rope(k, tables, False)
            if cache is not None:
                a = attend(q, *cache.append(l, k, v), bias).reshape(b, t, -1)
            else:
                a = attention(q, k, v, bias).reshape(b, t, -1)
            x = x + a @ w[p + "attn_output.weight"].T
            h = rms_norm(x, w[p + "ffn_norm.weight"], s.rms_eps)
            g = F.silu(h @ w[p + "ffn_gate.weight"].T) * (h @ w[p + "ffn_up.weight"].T)
            x = x + g @ w[p + "ffn_down.weight"].T
        if cache is not None:
            cache.length += t
        x = rms_norm(x, w["output_norm.weight"], s.rms_eps)
        return x @ w.get("output.weight", w["token_embd.weight"]).T


class KvCache:
    """Preallocated K/V per layer in attend()'s layout (K as [b * hkv, hd, capacity], V as [b * hkv, capacity,
    hd]) so that sampling appends a token without copying the past."""

    def __init__(self, shape, batch, capacity):
        n = batch * shape.n_head_kv
        self.k = [torch.empty(n, shape.head_dim, capacity) for _ in range(shape.n_layer)]
        self.v = [torch.empty(n, capacity, shape.head_dim) for _ in range(shape.n_layer)]
        self.length = 0

    def append(self, layer, k, v):
        """k, v: [b, t, hkv, hd] for the next t positions; returns the layer's K and V up to them."""
        b, t, hkv, hd = k.shape
        end = self.length + t
        self.k[layer][:, :, self.length:end] = k.permute(0, 2, 3, 1).reshape(b * hkv, hd, t)
        self.v[layer][:, self.length:end] = v.permute(0, 2, 1, 3).reshape(b * hkv, t, hd)
        return self.k[layer][:, :, :end], self.v[layer][:, :end]


class TernaryLinear(nn.Module):
    """A projection bitrun runs as ternary weights x int8 activations: y = Q8(x) . (codes * scale)."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_out, n_in))
        nn.init.normal_(self.weight, std=1.0 / math.sqrt(n_in))

    def forward(self, x_q):   # x_q: already int8-quantized activations (shared by projections of one input)
        return x_q @ fake_ternary(self.weight).T


class Block(nn.Module):
    def __init__(self, s):
        super().__init__()
        kv = s.n_head_kv * s.head_dim
        self.attn_norm, self.ffn_norm = nn.Parameter(torch.ones(s.dim)), nn.Parameter(torch.ones(s.dim))
        self.attn_sub_norm, self.ffn_sub_norm = nn.Parameter(torch.ones(s.dim)), nn.Parameter(torch.ones(s.n_ff))
        self.q, self.k, self.v = TernaryLinear(s.dim, s.dim), TernaryLinear(s.dim, kv), TernaryLinear(s.dim, kv)
        self.o = TernaryLinear(s.dim, s.dim)
        self.gate, self.up = TernaryLinear(s.dim, s.n_ff), TernaryLinear(s.dim, s.n_ff)
        self.down = TernaryLinear(s.n_ff, s.dim)

    def forward(self, x, tables, bias, s, cache=None, layer=0):
        b, t, _ = x.shape
        h = fake_int8_rows(rms_norm(x, self.attn_norm, s.rms_eps))
        q = self.q(h).view(b, t, s.n_head, s.head_dim)
        k = self.k(h).view(b, t, s.n_head_kv, s.head_dim)
        v = self.v(h).view(b, t, s.n_head_kv, s.head_dim)
        q, k = rope(q, tables, True), rope(k, tables, True)
        k, v = fake_fp16(k), fake_fp16(v)   # bitrun keeps K/V in an fp16 cache
        if cache is not None:
            a = attend(q, *cache.append(layer, k, v), bias).reshape(b, t, -1)
        else:
            a = attention(q, k, v, bias).reshape(b, t, -1)
        a = fake_int8_rows(rms_norm(a, self.attn_sub_norm, s.rms_eps))
        x = x + self.o(a)
        h = fake_int8_rows(rms_norm(x, self.ffn_norm, s.rms_eps))
        g = F.relu(self.gate(h)).square() * self.up(h)
        g = fake_int8_rows(rms_norm(g, self.ffn_sub_norm, s.rms_eps))
        return x + self.down(g)


class Student(nn.Module):
    """bitnet-b1.58: ReLU^2-gated FFN, SubLN, NEOX RoPE, ternary projections, untied int8 output matrix."""

    ARCH = "bitnet-b1.58"

    def __init__(self, s):
        super().__init__()
        self.shape = s
        self.tok_embd = nn.Parameter(torch.randn(s.n_vocab, s.dim) * 0.02)
        self.blocks = nn.ModuleList(Block(s) for _ in range(s.n_layer))
        self.output_norm = nn.Parameter(torch.ones(s.dim))
        self.output = nn.Parameter(torch.randn(s.n_vocab, s.dim) * (1.0 / math.sqrt(s.dim)))

    def forward(self, tokens, positions, mask, cache=None):
        """tokens [b, t], positions [t], mask bool [t, t] (True = may attend) -> logits [b, t, vocab]. With a
        KvCache, tokens continue the cached sequences and mask is [t, cached + t] (used for greedy
        trajectories, one token at a time)."""
        s = self.shape
        x = self.tok_embd[tokens]
        tables, bias = rope_tables(positions, s.head_dim, s.rope_base), mask_bias(mask)
        for layer, blk in enumerate(self.blocks):
            x = blk(x, tables, bias, s, cache, layer)
        if cache is not None:
            cache.length += tokens.shape[1]
        h = fake_int8_rows(rms_norm(x, self.output_norm, s.rms_eps))
        return h @ fake_int8_output_matrix(self.output).T
