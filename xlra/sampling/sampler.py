"""KV-cache sampling: one jitted `lax.while_loop` over fixed-size buffers (the gemma sampler's shape).

Why this shape: the whole decode loop is one XLA program, so a step costs one fused forward pass
rather than a Python round trip, and fixed buffers (tokens, log-probs, cache) keep every shape
static. Prompts are left-padded to a bucketed length and the batch is padded to a bucketed size,
so new prompt lengths and batch sizes reuse a handful of compiled programs (`Sampler.trace_count`).

Rows and randomness. `Sampler.__call__(params, prompts, rng, num_samples=n)` prefills each prompt
once into a shared prompt cache that all n samples attend to (KVCache.prefix: one copy of each
prompt's keys, met by its n samples' queries as one matmul; each row's own cache holds only the
tokens it generates). Row `i * n + j` is sample `first_sample + j` of prompt `prompt_ids[i]`,
and draws its token at step t with `fold_in(fold_in(fold_in(rng, prompt_id), sample_id), t)`: a
sample does not depend on how rows are batched, chunked or shared, only on (rng, prompt id, sample id).

Log-probs. `SampleOutput.logprobs[r, t]` is `log_softmax(logits / T)[token]` of the *unfiltered*
distribution at the sampling temperature T (T = 1 for greedy). That is what a PPO learner
recomputes from the same tokens at the same temperature; top-k / top-p only change which tokens
can be drawn. For on-policy PPO leave top_k=0 and top_p=1 so the two distributions coincide.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Mapping, Sequence

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from xlra.models.transformer import KVCache, Transformer
from xlra.parallel.mesh import BATCH_AXES, RULES, batch_shards, logical_spec, make_mesh, tree_shardings


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
  """What to generate. Static: each distinct config compiles its own program.

  temperature 0 is greedy. top_k 0 and top_p 1 switch those filters off. A row stops at the first
  token in {eos_id} | stop_ids (that token is kept and counted in the length); after it the
  buffer holds pad_id. Prompts are left-padded to the smallest bucket >= their length: powers of
  two from `min_prompt_bucket`, capped at `max_prompt_len` (itself a bucket).
  """

  max_new_tokens: int
  eos_id: int
  pad_id: int
  temperature: float = 1.0
  top_k: int = 0
  top_p: float = 1.0
  stop_ids: tuple[int, ...] = ()
  min_prompt_bucket: int = 32
  max_prompt_len: int = 1024

  def __post_init__(self):
    def bad(field, why):
      raise ValueError(f"SamplingConfig.{field}={getattr(self, field)!r}: {why}")

    if self.max_new_tokens < 1:
      bad("max_new_tokens", "must be >= 1")
    if self.temperature < 0:
      bad("temperature", "must be >= 0 (0 is greedy)")
    if self.top_k < 0:
      bad("top_k", "must be >= 0 (0 switches top-k off)")
    if not 0 < self.top_p <= 1:
      bad("top_p", "must be in (0, 1] (1 switches top-p off)")
    if self.pad_id == self.eos_id or self.pad_id in self.stop_ids:
      bad("pad_id", "must differ from eos_id and stop_ids (padding would read as a stop)")
    if self.min_prompt_bucket < 1 or self.max_prompt_len < self.min_prompt_bucket:
      bad("max_prompt_len", f"must be >= min_prompt_bucket={self.min_prompt_bucket} >= 1")
    object.__setattr__(self, "stop_ids", tuple(int(s) for s in self.stop_ids))

  @property
  def greedy(self) -> bool:
    return self.temperature == 0


@dataclasses.dataclass(frozen=True)
class SampleOutput:
  """Host arrays for R = len(prompts) * num_samples rows, row i * n + j = sample j of prompt i.

  tokens [R, T] int32: generated tokens (prompt excluded), pad_id after the stop token.
  logprobs [R, T] float32: log_softmax(logits / T)[token] of the unfiltered distribution, 0 at padding.
  lengths [R] int32: generated tokens including the stop token.
  stopped [R] bool: the row ended with a stop token (False: it ran out of max_new_tokens).
  """

  tokens: np.ndarray
  logprobs: np.ndarray
  lengths: np.ndarray
  stopped: np.ndarray

  def response(self, r: int) -> list[int]:
    return self.tokens[r, : self.lengths[r]].tolist()


def bucket(n: int, minimum: int) -> int:
  """Smallest power-of-two multiple of `minimum` that holds n (so few distinct shapes compile)."""
  b = max(1, minimum)
  while b < n:
    b *= 2
  return b


def left_pad(prompts: Sequence[Sequence[int]], length: int, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
  """tokens [B, length] int32 and mask [B, length] bool with each prompt flush right."""
  tokens = np.full((len(prompts), length), pad_id, np.int32)
  mask = np.zeros((len(prompts), length), bool)
  for i, p in enumerate(prompts):
    if len(p):
      tokens[i, length - len(p):] = p
      mask[i, length - len(p):] = True
  return tokens, mask


def _to_host(x: jax.Array) -> np.ndarray:
  """The whole array on every process (rows are spread over hosts in a multi-host run)."""
  if not x.is_fully_addressable:
    from jax.experimental import multihost_utils
    x = multihost_utils.process_allgather(x, tiled=True)
  return np.asarray(x)


# ----------------------------------------------------------------------------------------------
# The two model calls of the loop; importable so tests can check them against a full forward pass.

def prefill(model: Transformer, tokens: jax.Array, mask: jax.Array, cache_len: int,
            cache_sharding: Any = None) -> tuple[jax.Array, KVCache]:
  """Run left-padded prompts [B, P] through the model into a fresh cache of `cache_len` slots.

  Real tokens get positions 0..len-1 whatever their padding. Returns the float32 logits [B, V] of
  the last slot (the next-token distribution of every non-empty prompt) and the cache.
  """
  b = tokens.shape[0]
  positions = jnp.maximum(jnp.cumsum(mask, axis=1) - 1, 0)
  cache = model.init_cache(b, cache_len)
  if cache_sharding is not None:
    cache = jax.lax.with_sharding_constraint(cache, cache_sharding)
  hidden, cache = model.hidden(tokens, positions, mask, None, cache)
  return model.logits(hidden[:, -1:])[:, 0], cache


def decode_logits(model: Transformer, cache: KVCache, token: jax.Array, position: jax.Array,
                  valid: jax.Array) -> tuple[jax.Array, KVCache]:
  """One cached step: token [B] at position [B] (valid [B]: a real token) -> logits [B, V], cache."""
  hidden, cache = model.hidden(token[:, None], position[:, None], valid[:, None], None, cache)
  return model.logits(hidden)[:, 0], cache


def filter_logits(scaled: jax.Array, top_k: int, top_p: float) -> jax.Array:
  """Top-k then top-p (nucleus) on temperature-scaled logits [B, V]; dropped tokens get -inf.

  The same order as Hugging Face's warpers (temperature, top-k, top-p). Top-p keeps the smallest
  prefix of the sorted distribution whose mass reaches p (always at least the top token).
  """
  neg = jnp.asarray(-jnp.inf, scaled.dtype)
  if top_k:
    kth = jax.lax.top_k(scaled, top_k)[0][:, -1:]
    scaled = jnp.where(scaled < kth, neg, scaled)
  if top_p < 1.0:
    srt = jnp.sort(scaled, axis=-1)[:, ::-1]
    probs = jax.nn.softmax(srt, axis=-1)
    mass_before = jnp.cumsum(probs, axis=-1) - probs
    keep = mass_before < top_p
    threshold = jnp.min(jnp.where(keep, srt, jnp.inf), axis=-1, keepdims=True)
    scaled = jnp.where(scaled < threshold, neg, scaled)
  return scaled


def inverse_cdf(probs: jax.Array, u: jax.Array) -> jax.Array:
  """Per row of unnormalised probs [B, V] (>= 0, some > 0) and u [B] in [0, 1]: the first index whose
  running sum exceeds u * total, i.e. a draw from probs / total (u = 1: the last token with mass).
  Zero-mass tokens are never chosen.

  Two levels of sqrt(V)-sized blocks instead of a running sum over V: pick the block where the
  running sum of block masses passes u * total, then the token inside it. The running sums are
  matmuls with a triangular 0/1 matrix, so a [B, V] row costs one reduction plus two small matmuls;
  jnp.cumsum over V (an associative scan on CPU) was the sampling loop's largest cost after the model.
  Block and inner sums round differently, so a draw that lands past the block's last token (a
  rounding sliver) takes its last token with mass.
  """
  b, v = probs.shape
  blk = max(1, math.isqrt(v - 1) + 1)  # ceil(sqrt(v)): blocks of blk tokens, at most blk blocks
  p = jnp.pad(probs, ((0, 0), (0, -v % blk))).reshape(b, -1, blk)
  below = lambda x: x @ jnp.triu(jnp.ones((x.shape[-1],) * 2, x.dtype))  # inclusive running sums
  last_with_mass = lambda x: jnp.max(jnp.where(x > 0, jnp.arange(x.shape[-1]), 0), axis=-1)
  mass = jnp.sum(p, axis=-1)  # [B, blocks]
  through = below(mass)
  target = u * through[:, -1]
  blocks = jnp.minimum(jnp.sum(through <= target[:, None], axis=-1), last_with_mass(mass))
  inner = jnp.take_along_axis(p, blocks[:, None, None], axis=1)[:, 0]  # [B, blk]
  before = jnp.take_along_axis(through - mass, blocks[:, None], axis=1)  # mass of the earlier blocks
  within = jnp.sum(before + below(inner) <= target[:, None], axis=-1)
  return blocks * blk + jnp.minimum(within, last_with_mass(inner))


def draw(logits: jax.Array, keys: jax.Array, step: jax.Array) -> jax.Array:
  """One token per row of logits [B, V] (-inf: never drawn) by inverting the CDF at a uniform drawn
  from fold_in(key, step): one random number per row instead of V Gumbel draws."""
  u = jax.vmap(lambda k: jax.random.uniform(jax.random.fold_in(k, step), ()))(keys)
  return inverse_cdf(jnp.exp(logits - jnp.max(logits, axis=-1, keepdims=True)), u)


def choose(logits: jax.Array, keys: jax.Array, step: jax.Array, cfg: SamplingConfig):
  """Next token [B] and its log-prob [B] under log_softmax(logits / T) (T = 1 when greedy)."""
  if cfg.greedy:
    token = jnp.argmax(logits, axis=-1)
    logp = jax.nn.log_softmax(logits, axis=-1)
  else:
    scaled = logits / cfg.temperature
    logp = jax.nn.log_softmax(scaled, axis=-1)
    token = draw(filter_logits(scaled, cfg.top_k, cfg.top_p), keys, step)
  token = token.astype(jnp.int32)
  return token, jnp.take_along_axis(logp, token[:, None], axis=-1)[:, 0]


@flax.struct.dataclass
class _LoopState:
  step: jax.Array  # [] int32: index of the token the next iteration samples
  last: jax.Array  # [R] int32: the token sampled at step - 1
  tokens: jax.Array  # [R, T] int32
  logprobs: jax.Array  # [R, T] float32
  done: jax.Array  # [R] bool: the row has emitted its stop token (or is batch padding)
  lengths: jax.Array  # [R] int32
  next_pos: jax.Array  # [R] int32: position of `last`
  keys: jax.Array  # [R] typed PRNG keys, one per (prompt id, sample id)
  cache: KVCache


class Sampler:
  """Jitted sampler for one model graph and one SamplingConfig; params are an argument.

  `sampler(params, prompts, rng, num_samples=n)` -> SampleOutput. `params` is the nnx state of a
  Transformer with this graphdef (`graphdef, params = nnx.split(model)`), so new weights (a PPO
  update) reuse the compiled program. The batch is split over the mesh's (data, fsdp) axes and the
  cache's kv heads over `tensor`, following the parameters' logical-axis rules.
  """

  def __init__(self, graphdef: nnx.GraphDef, config: SamplingConfig, mesh: Mesh | None = None,
               rules: Mapping[str, Any] = RULES):
    self.graphdef = graphdef
    self.config = config
    self.mesh = mesh if mesh is not None else make_mesh({"data": -1})
    self.rules = rules
    self.trace_count = 0  # incremented when the jitted body is traced, i.e. on every compilation
    # cache k [B, K, H, S] and v [B, K, S, H]: rows over (data, fsdp), kv heads as the parameters' rules place them
    self._k = NamedSharding(self.mesh, P(BATCH_AXES, *logical_spec(("kv_heads", "head_dim", None), rules)))
    self._v = NamedSharding(self.mesh, P(BATCH_AXES, *logical_spec(("kv_heads", None, "head_dim"), rules)))
    self._rows = NamedSharding(self.mesh, P(BATCH_AXES, None))
    self._param_shardings = None  # from the first params seen (their logical axes)
    self._jitted: dict[int, Any] = {}

  # -- host side ---------------------------------------------------------------------------------
  def __call__(self, params: nnx.State, prompts: Sequence[Sequence[int]], rng: jax.Array, *,
               num_samples: int = 1, prompt_ids: Sequence[int] | None = None,
               first_sample: int = 0) -> SampleOutput:
    """Sample `num_samples` continuations of each prompt (lists of token ids, no padding).

    prompt_ids (default 0..B-1) and first_sample name the rows' randomness (module docstring):
    pass global prompt indices when a prompt set is split into batches.
    """
    cfg, n = self.config, int(num_samples)
    if n < 1:
      raise ValueError(f"num_samples={num_samples} must be >= 1")
    if not len(prompts):
      raise ValueError("prompts is empty")
    longest = max(len(p) for p in prompts)
    for i, p in enumerate(prompts):
      if not len(p):
        raise ValueError(f"prompts[{i}] is empty; every prompt needs at least one token (e.g. BOS)")
    if longest > cfg.max_prompt_len:
      i = max(range(len(prompts)), key=lambda k: len(prompts[k]))
      raise ValueError(f"prompts[{i}] has {longest} tokens > SamplingConfig.max_prompt_len="
                       f"{cfg.max_prompt_len}; truncate it or raise max_prompt_len")
    ids = np.arange(len(prompts)) if prompt_ids is None else np.asarray(prompt_ids)
    if ids.shape != (len(prompts),) or (ids < 0).any():
      raise ValueError(f"prompt_ids must be {len(prompts)} non-negative ints, got shape {ids.shape}")
    plen = min(bucket(longest, cfg.min_prompt_bucket), cfg.max_prompt_len)
    b = len(prompts)
    shards = batch_shards(self.mesh)
    bb = -(-bucket(b, 1) // shards) * shards  # a power of two, rounded up to fill every shard
    tokens, mask = left_pad(list(prompts) + [[]] * (bb - b), plen, cfg.pad_id)
    ids = np.concatenate([ids, np.zeros(bb - b, ids.dtype)]).astype(np.uint32)

    if self._param_shardings is None:
      self._param_shardings = tree_shardings(params, self.mesh, self.rules)
    params = jax.device_put(params, self._param_shardings)
    rng = jax.random.wrap_key_data(rng) if not jnp.issubdtype(rng.dtype, jax.dtypes.prng_key) else rng
    row = NamedSharding(self.mesh, P(BATCH_AXES))
    out = self._fn(n)(params, jax.device_put(tokens, self._rows), jax.device_put(mask, self._rows),
                      jax.device_put(ids, row), jnp.asarray(first_sample, jnp.uint32), rng)
    r = b * n  # padding rows come after every real row (prompt-major order)
    toks, logps, lengths, stopped = (_to_host(x)[:r] for x in out)
    return SampleOutput(toks, logps, lengths, stopped)

  def _fn(self, n: int):
    if n not in self._jitted:
      row = NamedSharding(self.mesh, P(BATCH_AXES))
      rep = NamedSharding(self.mesh, P())
      self._jitted[n] = jax.jit(
          functools.partial(self._generate, n=n),
          in_shardings=(self._param_shardings, self._rows, self._rows, row, rep, rep),
          out_shardings=(self._rows, self._rows, row, row))
    return self._jitted[n]

  # -- device side -------------------------------------------------------------------------------
  def _cache_shardings(self, depth: int, prefix: KVCache | None = None) -> KVCache:
    k, v = (self._k,) * depth, (self._v,) * depth
    return KVCache(k, v, self._rows, self._rows, NamedSharding(self.mesh, P()), prefix)

  def _generate(self, params, tokens, mask, prompt_ids, first_sample, rng, *, n: int):
    self.trace_count += 1
    cfg = self.config
    model = nnx.merge(self.graphdef, params)
    b, plen = tokens.shape
    steps = cfg.max_new_tokens
    depth = len(model.blocks)
    # Shared prefix: the prompts' cache is prefilled once and kept once; the b * n rows (sample j of
    # prompt i at row i * n + j) attend to it and to their own cache of generated tokens.
    logits, prompts = prefill(model, tokens, mask, plen, self._cache_shardings(depth))
    cache = model.init_cache(b * n, steps, prefix=prompts)
    cache = jax.lax.with_sharding_constraint(cache, self._cache_shardings(depth, self._cache_shardings(depth)))
    prompt_len = jnp.sum(mask, axis=1, dtype=jnp.int32)
    rep = lambda x: jnp.repeat(x, n, axis=0)
    logits, prompt_len, prompt_ids = rep(logits), rep(prompt_len), rep(prompt_ids)
    r = b * n
    sample_ids = first_sample + jnp.tile(jnp.arange(n, dtype=jnp.uint32), b)
    keys = jax.vmap(lambda p, s: jax.random.fold_in(jax.random.fold_in(rng, p), s))(prompt_ids, sample_ids)
    stop_ids = jnp.asarray((cfg.eos_id,) + cfg.stop_ids, jnp.int32)

    def emit(state: _LoopState, logits) -> _LoopState:
      token, logp = choose(logits, state.keys, state.step, cfg)
      live = ~state.done
      token = jnp.where(live, token, cfg.pad_id)
      logp = jnp.where(live, logp, 0.0)
      put = lambda buf, v: jax.lax.dynamic_update_slice_in_dim(buf, v[:, None], state.step, axis=1)
      return state.replace(
          step=state.step + 1, last=token, tokens=put(state.tokens, token), logprobs=put(state.logprobs, logp),
          done=state.done | jnp.isin(token, stop_ids), lengths=state.lengths + live, next_pos=state.next_pos + 1)

    state = _LoopState(
        step=jnp.zeros((), jnp.int32), last=jnp.full((r,), cfg.pad_id, jnp.int32),
        tokens=jnp.full((r, steps), cfg.pad_id, jnp.int32), logprobs=jnp.zeros((r, steps), jnp.float32),
        done=prompt_len == 0, lengths=jnp.zeros((r,), jnp.int32), next_pos=prompt_len - 1, keys=keys, cache=cache)
    state = emit(state, logits)

    def cond(s: _LoopState):
      return (s.step < steps) & ~jnp.all(s.done)

    def body(s: _LoopState):
      logits, cache = decode_logits(model, s.cache, s.last, s.next_pos, ~s.done)
      return emit(s.replace(cache=cache), logits)

    state = jax.lax.while_loop(cond, body, state)
    stopped = state.done & (state.lengths > 0)
    return state.tokens, state.logprobs, state.lengths, stopped
