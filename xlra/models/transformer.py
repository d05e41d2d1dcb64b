"""One flax.nnx decoder for the Llama 3, Qwen 2/3 and Gemma 2/3 families.

Shapes: B batch, L query length, S key length (cache slots), D d_model, N query heads, K kv heads,
G = N // K query heads per kv head, H head_dim, F d_ff, V vocab.

Every parameter carries logical axis names in its `axes` metadata; `xlra.parallel.mesh` maps them
onto mesh axes. Masks are built from explicit positions, so left padding (generation), right padding
(training), packing (segment ids) and the KV cache all use the same attention code. Without a cache,
attention is also causal by row index (as Hugging Face masks), so it runs in query blocks that skip
the keys after each block (`query_blocks`).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from xlra.models.config import ModelConfig

_MASKED = -1e30  # finite, so a fully masked (padding) query row gives no NaN


class _ParamKeys:
  """Stands in for nnx.Rngs during init: one `rngs.params()` draw, then fold_in with a Python counter.

  Why: every `nnx.Rngs.params()` call updates a counter Variable, and under tracing (nnx.eval_shape,
  a jitted init) flax 0.12 with jax 0.10 spends time proportional to the trace so far on each update
  (a failed `.sharding` lookup builds an error message from the whole trace), so init was quadratic in
  depth: about 10 s to eval_shape Gemma2-9B. fold_in on a fixed key costs the same at every layer.
  """

  def __init__(self, rngs: nnx.Rngs):
    self._key, self._count = rngs.params(), 0

  def params(self) -> jax.Array:
    self._count += 1
    return jax.random.fold_in(self._key, self._count)


def _param(rngs: nnx.Rngs | _ParamKeys, init, shape, dtype, axes) -> nnx.Param:
  return nnx.Param(init(rngs.params(), shape, jnp.dtype(dtype)), axes=axes)


_normal = jax.nn.initializers.normal(0.02)
_zeros = jax.nn.initializers.zeros
_ones = jax.nn.initializers.ones


def _matmul(a: jax.Array, b: jax.Array, out_dtype) -> jax.Array:
  return jnp.matmul(a, b, preferred_element_type=out_dtype)


def _t(x: jax.Array) -> jax.Array:
  return jnp.swapaxes(x, -1, -2)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _cpu_matmul(a: jax.Array, b: jax.Array, out_dtype) -> jax.Array:
  return _matmul(a, b, out_dtype)


def _cpu_matmul_fwd(a, b, out_dtype):
  return _matmul(a, b, out_dtype), (a, b)


def _cpu_matmul_bwd(out_dtype, res, dy):
  """Gradients of a [..., M, K] @ b [..., K, N] with every dot in canonical [M, K] @ [K, N] form.

  db contracts M, the row dimension of both a and dy. Left to itself, XLA:CPU folds the needed
  transpose into the dot and picks the operand to transpose badly: for the MLP it wrote dy (tokens x
  d_ff, the largest activation) transposed from inside the fusion producing it, for attention the
  probabilities (queries x keys); such strided writes ran at a fraction of matmul speed, and the dot
  itself then ran outside YNNPACK. Here the smaller of the two ways is spelled out (a^T @ dy, or
  (dy^T @ a)^T when dy and the result are smaller than a) with the transposed operand behind a
  barrier, so XLA cannot fold it back. bench32m SFT on 2 CPU cores went from about 0.6 to about 0.8
  of the matmul peak (bench/sft_mfu.py).
  """
  a, b = res
  m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
  a_, b_ = a.astype(dy.dtype), b.astype(dy.dtype)
  da = _matmul(dy, _t(b_), dy.dtype)
  if m * k <= m * n + k * n:
    db = _matmul(jax.lax.optimization_barrier(_t(a_)), dy, dy.dtype)
  else:
    db = _t(_matmul(jax.lax.optimization_barrier(_t(dy)), a_, dy.dtype))
  return da.astype(a.dtype), db.astype(b.dtype)


_cpu_matmul.defvjp(_cpu_matmul_fwd, _cpu_matmul_bwd)


def matmul(a: jax.Array, b: jax.Array, out_dtype=None) -> jax.Array:
  """a [..., M, K] @ b [..., K, N] (same leading dims) accumulated and returned in `out_dtype`
  (default: the inputs' dtype). On CPU the backward pass is laid out by hand (`_cpu_matmul_bwd`);
  other backends keep XLA's own layout. The values are the same either way."""
  if a.dtype != b.dtype:
    raise TypeError(f"matmul: a is {a.dtype} but b is {b.dtype}; cast both to the compute dtype")
  if a.shape[:-2] != b.shape[:-2] or a.shape[-1] != b.shape[-2]:
    raise ValueError(f"matmul: shapes {a.shape} @ {b.shape} need the same leading dims and a matching K")
  out_dtype = jnp.dtype(out_dtype or a.dtype)
  return _cpu_matmul(a, b, out_dtype) if jax.default_backend() == "cpu" else _matmul(a, b, out_dtype)


def dense(x: jax.Array, w: jax.Array, out_dtype=None) -> jax.Array:
  """x [..., K] @ w [K, N] -> [..., N]: `matmul` over the flattened leading dims of x."""
  out = matmul(x.reshape(-1, x.shape[-1]), w, out_dtype)
  return out.reshape(*x.shape[:-1], w.shape[-1])


class KVCache(NamedTuple):
  """Fixed-size decode cache. Slots [0, index) are written; `pos` and `valid` describe each slot.

  Keys are stored transposed, so a step's scores q @ k are a plain [G L, H] @ [H, S] matmul per
  (row, kv head); contracting H against [S, H] keys ran 2-3x slower on CPU.

  `prefix`: an optional shared cache of B // n rows (a prefilled prompt batch) that row r continues
  from row r // n, so best-of-n keeps one copy of each prompt's keys instead of n: the n samples'
  queries meet those keys as one [n G L, H] matmul, and their own slots hold only generated tokens.
  """

  k: tuple[jax.Array, ...]  # per layer [B, K, H, S]
  v: tuple[jax.Array, ...]  # per layer [B, K, S, H]
  pos: jax.Array  # [B, S] int32 position of the token in each slot
  valid: jax.Array  # [B, S] bool: slot holds a real (non-padding) token
  index: jax.Array  # [] int32 next slot to write
  prefix: "KVCache | None" = None


class RMSNorm(nnx.Module):
  def __init__(self, dim: int, cfg: ModelConfig, axes: tuple[str, ...], rngs: nnx.Rngs):
    self.offset = cfg.norm_offset
    self.eps = cfg.norm_eps
    init = _zeros if cfg.norm_offset else _ones
    self.scale = _param(rngs, init, (dim,), cfg.param_dtype, axes)

  def __call__(self, x: jax.Array) -> jax.Array:
    xf = x.astype(jnp.float32)
    y = xf * jax.lax.rsqrt(jnp.mean(xf * xf, axis=-1, keepdims=True) + self.eps)
    w = self.scale[...].astype(jnp.float32)
    return (y * (1.0 + w if self.offset else w)).astype(x.dtype)


def rope_frequencies(cfg: ModelConfig, layer_type: str) -> jax.Array:
  """Inverse frequencies [H/2] of one layer type, with Llama-3 or linear scaling on full layers."""
  theta = cfg.local_rope_theta if (layer_type == "sliding" and cfg.local_rope_theta) else cfg.rope_theta
  inv = 1.0 / (theta ** (jnp.arange(0, cfg.head_dim, 2, dtype=jnp.float32) / cfg.head_dim))
  sc = cfg.rope_scaling
  if sc is None or (layer_type == "sliding" and cfg.local_rope_theta):
    return inv
  if sc["rope_type"] == "linear":
    return inv / sc["factor"]
  # Llama 3: long wavelengths slowed by `factor`, short ones kept, a smooth blend between.
  factor, lo, hi = sc["factor"], sc["low_freq_factor"], sc["high_freq_factor"]
  old = sc["original_max_position_embeddings"]
  wavelen = 2 * math.pi / inv
  scaled = jnp.where(wavelen > old / lo, inv / factor, inv)
  smooth = (old / wavelen - lo) / (hi - lo)
  blended = (1 - smooth) * scaled / factor + smooth * scaled
  medium = (wavelen >= old / hi) & (wavelen <= old / lo)
  return jnp.where(medium, blended, scaled)


def apply_rope(x: jax.Array, positions: jax.Array, inv_freq: jax.Array) -> jax.Array:
  """Rotate-half RoPE (the Hugging Face layout). x [B, L, heads, H], positions [B, L]."""
  angles = positions.astype(jnp.float32)[..., None] * inv_freq  # [B, L, H/2]
  cos = jnp.cos(angles)[:, :, None, :]
  sin = jnp.sin(angles)[:, :, None, :]
  xf = x.astype(jnp.float32)
  x1, x2 = jnp.split(xf, 2, axis=-1)
  out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
  return out.astype(x.dtype)


class Attention(nnx.Module):
  def __init__(self, cfg: ModelConfig, layer_type: str, rngs: nnx.Rngs):
    self.cfg = cfg
    self.layer_type = layer_type
    d, n, k, h, pd = cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, cfg.param_dtype
    self.wq = _param(rngs, _normal, (d, n, h), pd, ("embed", "heads", "head_dim"))
    self.wk = _param(rngs, _normal, (d, k, h), pd, ("embed", "kv_heads", "head_dim"))
    self.wv = _param(rngs, _normal, (d, k, h), pd, ("embed", "kv_heads", "head_dim"))
    self.wo = _param(rngs, _normal, (n, h, d), pd, ("heads", "head_dim", "embed"))
    if cfg.qkv_bias:
      self.bq = _param(rngs, _zeros, (n, h), pd, ("heads", "head_dim"))
      self.bk = _param(rngs, _zeros, (k, h), pd, ("kv_heads", "head_dim"))
      self.bv = _param(rngs, _zeros, (k, h), pd, ("kv_heads", "head_dim"))
    if cfg.qk_norm:
      self.q_norm = RMSNorm(h, cfg, ("head_dim",), rngs)
      self.k_norm = RMSNorm(h, cfg, ("head_dim",), rngs)

  def __call__(self, x, positions, q_seg, k_pos, k_valid, k_seg, cache_kv):
    cfg, dt = self.cfg, jnp.dtype(self.cfg.dtype)
    def proj(w):  # [B, L, D] @ [D, heads, H] as one [D, heads * H] matmul
      w = w[...].astype(dt)
      return dense(x, w.reshape(w.shape[0], -1)).reshape(*x.shape[:2], *w.shape[1:])

    q, k, v = proj(self.wq), proj(self.wk), proj(self.wv)
    if cfg.qkv_bias:
      q, k, v = q + self.bq[...].astype(dt), k + self.bk[...].astype(dt), v + self.bv[...].astype(dt)
    if cfg.qk_norm:
      q, k = self.q_norm(q), self.k_norm(k)
    inv = rope_frequencies(cfg, self.layer_type)
    q, k = apply_rope(q, positions, inv), apply_rope(k, positions, inv)

    kt, v = k.transpose(0, 2, 3, 1), v.transpose(0, 2, 1, 3)  # [B, K, H, L] and [B, K, L, H]
    prefix = None
    if cache_kv is not None:  # write this chunk at the cache index, then attend over every slot
      ck, cv, index, prefix = cache_kv
      kt = jax.lax.dynamic_update_slice_in_dim(ck, kt.astype(ck.dtype), index, axis=3)
      v = jax.lax.dynamic_update_slice_in_dim(cv, v.astype(cv.dtype), index, axis=2)
      new_kv = (kt, v)
    else:
      new_kv = None

    b, l, n, h = q.shape
    kh, g = cfg.n_kv_heads, n // cfg.n_kv_heads
    scale = (cfg.query_pre_attn_scalar or cfg.head_dim) ** -0.5
    q = (q * scale).reshape(b, l, kh, g, h).transpose(0, 2, 3, 1, 4)  # [B, K, G, L, H]
    if cache_kv is None:  # query block [lo, hi) against keys [0, hi): the rest are later, so masked
      out = jnp.concatenate([
          self._attend(q[:, :, :, lo:hi], kt[..., :hi], v[:, :, :hi], positions[:, lo:hi], q_seg[:, lo:hi],
                       k_pos[:, :hi], k_valid[:, :hi], k_seg[:, :hi], first=lo)
          for lo, hi in query_blocks(l, cfg.attn_block)], axis=3)
    else:
      out = self._attend(q, kt, v, positions, q_seg, k_pos, k_valid, k_seg, prefix=prefix)
    out = out.transpose(0, 3, 1, 2, 4).reshape(b, l, n * h)
    return dense(out, self.wo[...].astype(dt).reshape(n * h, -1)), new_kv

  def _attend(self, q, kt, v, q_pos, q_seg, k_pos, k_valid, k_seg, *, first=None, prefix=None):
    """Softmax attention of scaled queries q [B, K, G, L, H] over keys kt [B, K, H, S] and values
    v [B, K, S, H] (after the shared `prefix`'s slots when given) -> [B, K, G, L, H].

    A key is visible when it is a real token at a position <= the query's, in the same segment, and
    inside the window of a sliding layer. Without a cache (`first` = the row index of the first query,
    keys from index 0) it must also not come later in the row: causal by index as well as by position,
    as Hugging Face masks, which is what lets the caller skip the keys after a query block.
    """
    cfg, dt = self.cfg, jnp.dtype(self.cfg.dtype)
    b, kh, g, l, h = q.shape
    # Batched matmuls over (batch, kv head); the G query heads of a group share its keys and
    # values, so the queries of a group are one [G * L, H] matrix (grouped-query attention).
    q = q.reshape(b, kh, g * l, h)
    logits = matmul(q, kt.astype(dt), jnp.float32)  # [B, K, G L, S]
    if prefix is not None:  # shared prompt keys first: the n rows of a prompt as one matmul
      pk, pv = prefix  # k_pos, k_valid and k_seg already cover its slots (Transformer.hidden)
      bp, sp = pk.shape[0], pk.shape[3]
      rows = lambda x: x.reshape(bp, b // bp, kh, g * l, -1).transpose(0, 2, 1, 3, 4).reshape(bp, kh, -1, x.shape[-1])
      unrows = lambda x: x.reshape(bp, kh, b // bp, g * l, -1).transpose(0, 2, 1, 3, 4).reshape(b, kh, g * l, -1)
      p_logits = unrows(matmul(rows(q), pk.astype(dt), jnp.float32))
      logits = jnp.concatenate([p_logits, logits], axis=-1)
    s = logits.shape[-1]
    logits = logits.reshape(b, kh, g, l, s)
    if cfg.attn_softcap:
      logits = jnp.tanh(logits / cfg.attn_softcap) * cfg.attn_softcap
    qp = q_pos[:, :, None]
    kp = k_pos[:, None, :]
    allowed = k_valid[:, None, :] & (kp <= qp) & (q_seg[:, :, None] == k_seg[:, None, :])
    if self.layer_type == "sliding":
      allowed &= (qp - kp) < cfg.sliding_window
    if first is not None:
      allowed &= jnp.arange(s)[None, None, :] <= first + jnp.arange(l)[None, :, None]
    logits = jnp.where(allowed[:, None, None], logits, _MASKED)
    probs = jax.nn.softmax(logits, axis=-1).astype(dt).reshape(b, kh, g * l, s)
    if prefix is None:
      out = matmul(probs, v.astype(dt))  # [B, K, G * L, H]
    else:
      out = unrows(matmul(rows(probs[..., :sp]), pv.astype(dt))) + matmul(probs[..., sp:], v.astype(dt))
    return out.reshape(b, kh, g, l, h)


MAX_QUERY_BLOCKS = 8  # each block is its own set of ops: more would grow programs for little gain


def query_blocks(length: int, block: int) -> list[tuple[int, int]]:
  """[lo, hi) bounds of the query blocks of uncached causal attention: near-equal blocks of about
  `block` tokens, at most MAX_QUERY_BLOCKS (block 0 or >= length: one). Block [lo, hi) attends to
  keys [0, hi), so the score and value matmuls cost (n + 1) / 2n of the full square for n blocks
  (bench32m SFT step on 2 CPU cores, 512 tokens in 4 blocks: about 10% faster)."""
  n = 1 if block <= 0 else min(MAX_QUERY_BLOCKS, -(-length // block))
  bounds = [length * i // n for i in range(n + 1)]
  return [(lo, hi) for lo, hi in zip(bounds, bounds[1:]) if hi > lo]


class MLP(nnx.Module):
  def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
    self.cfg = cfg
    d, f, pd = cfg.d_model, cfg.d_ff, cfg.param_dtype
    self.w_gate = _param(rngs, _normal, (d, f), pd, ("embed", "mlp"))
    self.w_up = _param(rngs, _normal, (d, f), pd, ("embed", "mlp"))
    self.w_down = _param(rngs, _normal, (f, d), pd, ("mlp", "embed"))

  def __call__(self, x):
    dt = jnp.dtype(self.cfg.dtype)
    gate = dense(x, self.w_gate[...].astype(dt))
    act = jax.nn.silu(gate) if self.cfg.act == "silu" else jax.nn.gelu(gate, approximate=True)
    return dense(act * dense(x, self.w_up[...].astype(dt)), self.w_down[...].astype(dt))


class Block(nnx.Module):
  def __init__(self, cfg: ModelConfig, layer_type: str, rngs: nnx.Rngs):
    self.attn_norm = RMSNorm(cfg.d_model, cfg, ("embed",), rngs)
    self.attn = Attention(cfg, layer_type, rngs)
    self.mlp_norm = RMSNorm(cfg.d_model, cfg, ("embed",), rngs)
    self.mlp = MLP(cfg, rngs)
    self.post_norms = cfg.post_norms
    if cfg.post_norms:
      self.attn_post_norm = RMSNorm(cfg.d_model, cfg, ("embed",), rngs)
      self.mlp_post_norm = RMSNorm(cfg.d_model, cfg, ("embed",), rngs)

  def __call__(self, x, positions, q_seg, k_pos, k_valid, k_seg, cache_kv):
    a, new_kv = self.attn(self.attn_norm(x), positions, q_seg, k_pos, k_valid, k_seg, cache_kv)
    x = x + (self.attn_post_norm(a) if self.post_norms else a)
    m = self.mlp(self.mlp_norm(x))
    return x + (self.mlp_post_norm(m) if self.post_norms else m), new_kv


class Transformer(nnx.Module):
  """Decoder-only LM. `model(tokens)` -> float32 logits [B, L, V]."""

  def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    rngs = _ParamKeys(rngs)
    self.embedding = _param(rngs, _normal, (cfg.vocab_size, cfg.d_model), cfg.param_dtype, ("vocab", "embed"))
    self.blocks = nnx.List([Block(cfg, cfg.layer_type(i), rngs) for i in range(cfg.n_layers)])
    self.final_norm = RMSNorm(cfg.d_model, cfg, ("embed",), rngs)
    if not cfg.tie_embeddings:
      self.lm_head = _param(rngs, _normal, (cfg.d_model, cfg.vocab_size), cfg.param_dtype, ("embed", "vocab"))

  def __call__(self, tokens, positions=None, mask=None, segment_ids=None) -> jax.Array:
    hidden, _ = self.hidden(tokens, positions, mask, segment_ids)
    return self.logits(hidden)

  def hidden(self, tokens, positions=None, mask=None, segment_ids=None, cache: KVCache | None = None):
    """Final-normed hidden states [B, L, D] (and the updated cache when one is given).

    tokens [B, L] int; mask [B, L] bool, True at real tokens (default all True); positions [B, L]
    (default: running count of real tokens, so left padding gets correct positions); segment_ids
    [B, L] for packed rows. With a cache, the L tokens are written at slots [index, index + L).
    """
    cfg, dt = self.cfg, jnp.dtype(self.cfg.dtype)
    b, l = tokens.shape
    if mask is None:
      mask = jnp.ones((b, l), bool)
    if cache is not None:  # every key slot: the shared prompt's first (each row of it repeated for its rows)
      slot_pos, slot_valid, first = cache.pos, cache.valid, 0
      if cache.prefix is not None:
        n = b // cache.prefix.pos.shape[0]
        slot_pos = jnp.concatenate([jnp.repeat(cache.prefix.pos, n, axis=0), slot_pos], axis=1)
        slot_valid = jnp.concatenate([jnp.repeat(cache.prefix.valid, n, axis=0), slot_valid], axis=1)
        first = cache.prefix.pos.shape[1]
    if positions is None:
      positions = jnp.maximum(jnp.cumsum(mask, axis=1) - 1, 0)
      if cache is not None:  # continue from the last written position
        positions = positions + jnp.max(jnp.where(slot_valid, slot_pos + 1, 0), axis=1, keepdims=True)
    positions = positions.astype(jnp.int32)
    if segment_ids is None:
      segment_ids = jnp.zeros((b, l), jnp.int32)
    x = jnp.take(self.embedding[...], tokens, axis=0).astype(dt)
    if cfg.embed_scale:
      x = x * jnp.asarray(math.sqrt(cfg.d_model), dt)

    if cache is None:
      k_pos, k_valid, k_seg = positions, mask, segment_ids
    else:
      upd = lambda buf, val: jax.lax.dynamic_update_slice_in_dim(buf, val, first + cache.index, axis=1)
      k_pos, k_valid = upd(slot_pos, positions), upd(slot_valid, mask)
      k_seg = jnp.zeros_like(k_pos)
    new_k, new_v = [], []
    for i, block in enumerate(self.blocks):
      p = None if cache is None else cache.prefix
      kv = None if cache is None else (cache.k[i], cache.v[i], cache.index, None if p is None else (p.k[i], p.v[i]))
      x, written = block(x, positions, segment_ids, k_pos, k_valid, k_seg, kv)
      if written is not None:
        new_k.append(written[0])
        new_v.append(written[1])
    x = self.final_norm(x)
    if cache is None:
      return x, None
    return x, KVCache(tuple(new_k), tuple(new_v), k_pos[:, first:], k_valid[:, first:], cache.index + l, cache.prefix)

  def logits(self, hidden: jax.Array) -> jax.Array:
    dt = jnp.dtype(self.cfg.dtype)
    w = self.embedding[...].T if self.cfg.tie_embeddings else self.lm_head[...]
    out = dense(hidden.astype(dt), w.astype(dt), jnp.float32)
    if self.cfg.final_softcap:
      out = jnp.tanh(out / self.cfg.final_softcap) * self.cfg.final_softcap
    return out

  def init_cache(self, batch: int, length: int, dtype=None, prefix: KVCache | None = None) -> KVCache:
    """An empty cache of `length` slots; with `prefix`, its rows continue the prefix's rows in
    groups of batch // prefix rows (KVCache.prefix)."""
    cfg = self.cfg
    dtype = jnp.dtype(dtype or cfg.dtype)
    if prefix is not None and (prefix.prefix is not None or batch % prefix.pos.shape[0]):
      raise ValueError(f"init_cache: batch {batch} must be a multiple of the prefix's {prefix.pos.shape[0]} rows, "
                       "and the prefix must not have a prefix itself")
    k = tuple(jnp.zeros((batch, cfg.n_kv_heads, cfg.head_dim, length), dtype) for _ in range(cfg.n_layers))
    v = tuple(jnp.zeros((batch, cfg.n_kv_heads, length, cfg.head_dim), dtype) for _ in range(cfg.n_layers))
    return KVCache(k, v, jnp.zeros((batch, length), jnp.int32), jnp.zeros((batch, length), bool),
                   jnp.zeros((), jnp.int32), prefix)
