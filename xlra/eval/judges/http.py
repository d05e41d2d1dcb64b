"""Pairwise judge over an OpenAI-compatible chat-completions server (vLLM, TGI, `transformers serve`,
hosted APIs), with only the standard library.

What makes it safe to point at a paid API: every answer is cached on disk before it is used (a rerun or
a resumed evaluation sends nothing already asked), a request budget caps the number of new requests,
concurrency is bounded, 429/5xx/timeouts/connection errors are retried with exponential backoff, and the
API key is read from an environment variable, sent only in the Authorization header and scrubbed from
every message this module produces.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import http.client
import json
import math
import os
import random
import socket
import threading
import time
import urllib.error
import urllib.request

from absl import logging

from xlra.eval.judges import base, prompts
from xlra.eval.judges.cache import JudgementCache, cache_key

ORDERS = ("random", "both")


@dataclasses.dataclass
class HttpJudgeConfig:
  base_url: str  # e.g. http://127.0.0.1:8000/v1 (the endpoint is base_url + /chat/completions)
  model: str
  api_key_env: str = ""  # name of the environment variable holding the key; "" sends no key
  timeout: float = 60.0  # seconds per HTTP attempt
  max_retries: int = 5  # retries after the first attempt, for 408/429/5xx/timeouts/connection errors
  backoff: float = 1.0  # first retry delay in seconds; doubles each retry
  backoff_max: float = 60.0
  max_concurrency: int = 4
  request_budget: int = 0  # max new requests per judge instance (retries not counted); 0 = unlimited
  temperature: float = 0.0
  max_tokens: int = 2
  logprobs: bool = True  # ask for top_logprobs; servers that ignore it (transformers serve) give the parsed answer
  top_logprobs: int = 5
  order: str = "random"  # "random": one order per example, seeded from the example; "both": average both
  cache_path: str = ""  # JSONL cache; "" keeps no cache

  def __post_init__(self):
    if self.order not in ORDERS:
      raise ValueError(f"HttpJudgeConfig.order={self.order!r}: choose one of {ORDERS}")
    if not self.base_url.startswith(("http://", "https://")):
      raise ValueError(f"HttpJudgeConfig.base_url={self.base_url!r}: must start with http:// or https://")
    if not self.model:
      raise ValueError("HttpJudgeConfig.model is empty: name the model the server serves")
    if self.max_concurrency < 1 or self.max_retries < 0 or self.request_budget < 0 or self.timeout <= 0:
      raise ValueError("HttpJudgeConfig: max_concurrency >= 1, max_retries >= 0, request_budget >= 0 and "
                       "timeout > 0 are required")


class _Failure(Exception):
  def __init__(self, kind: str, message: str, retryable: bool, retry_after: float | None = None):
    super().__init__(message)
    self.kind, self.retryable, self.retry_after = kind, retryable, retry_after


def example_order(req: base.Judgement) -> bool:
  """True when A is shown first. A fixed function of the example, so reruns ask the same question."""
  digest = hashlib.sha256("\x00".join((req.prompt, req.output_a, req.output_b)).encode("utf-8")).digest()
  return digest[0] % 2 == 0


class HttpJudge(base.Judge):
  """`HttpJudge(HttpJudgeConfig(...)).judge(requests)`; `stats["http_attempts"]` counts HTTP requests."""

  name = "http"

  def __init__(self, config: HttpJudgeConfig):
    super().__init__()
    self.config = config
    self._api_key = ""
    if config.api_key_env:
      self._api_key = os.environ.get(config.api_key_env, "")
      if not self._api_key:
        raise ValueError(f"HttpJudgeConfig.api_key_env={config.api_key_env!r}: that environment variable is "
                         "unset or empty; export it, or set api_key_env='' for a server without a key")
    self.judge_id = f"{config.base_url.rstrip('/')}|{config.model}|{prompts.TEMPLATE_VERSION}"
    self.cache = JudgementCache(config.cache_path) if config.cache_path else None
    self._budget_lock = threading.Lock()
    self._sent = 0

  def __repr__(self) -> str:  # the dataclass config holds only the variable's name, never the key
    return f"HttpJudge({self.judge_id!r})"

  # ---- one presentation order -------------------------------------------------------------------

  def _key(self, req: base.Judgement, first: str, second: str) -> str:
    c = self.config
    params = {"temperature": c.temperature, "max_tokens": c.max_tokens,
              "top_logprobs": c.top_logprobs if c.logprobs else 0}
    return cache_key(self.judge_id, params, req.task, req.lang, req.prompt, first, second)

  def _body(self, req: base.Judgement, first: str, second: str) -> dict:
    c = self.config
    body = {"model": c.model, "messages": prompts.chat_messages(req.task, req.prompt, first, second, req.lang),
            "temperature": c.temperature, "max_tokens": c.max_tokens, "stream": False}
    if c.logprobs:
      body.update(logprobs=True, top_logprobs=c.top_logprobs)
    return body

  def _redact(self, text: str) -> str:
    return text.replace(self._api_key, "***") if self._api_key else text

  def _take_budget(self) -> bool:
    with self._budget_lock:
      if self.config.request_budget and self._sent >= self.config.request_budget:
        return False
      self._sent += 1
      return True

  def _post(self, body: dict) -> dict:
    """One HTTP attempt; raises _Failure with whether it is worth retrying."""
    url = self.config.base_url.rstrip("/") + "/chat/completions"
    headers = {"Content-Type": "application/json"}
    if self._api_key:
      headers["Authorization"] = f"Bearer {self._api_key}"
    request = urllib.request.Request(url, data=json.dumps(body).encode("utf-8"), headers=headers, method="POST")
    self.count(http_attempts=1)
    try:
      with urllib.request.urlopen(request, timeout=self.config.timeout) as resp:
        raw = resp.read()
    except urllib.error.HTTPError as e:
      try:
        detail = e.read()[:300].decode("utf-8", "replace")
      except OSError:  # the error body itself was cut off
        detail = ""
      retry_after = _retry_after(e.headers.get("Retry-After") if e.headers else None)
      retryable = e.code in (408, 429) or 500 <= e.code < 600
      raise _Failure(base.HTTP, f"HTTP {e.code} from {url}: {detail}", retryable, retry_after) from None
    except (TimeoutError, socket.timeout) as e:
      raise _Failure(base.TIMEOUT, f"no answer from {url} within {self.config.timeout}s ({e})", True) from None
    except urllib.error.URLError as e:
      kind = base.TIMEOUT if isinstance(e.reason, (TimeoutError, socket.timeout)) else base.CONNECTION
      raise _Failure(kind, f"cannot reach {url}: {e.reason}", True) from None
    except (ConnectionError, http.client.HTTPException, OSError) as e:
      raise _Failure(base.CONNECTION, f"connection to {url} failed: {type(e).__name__}: {e}", True) from None
    try:
      return json.loads(raw)
    except ValueError:
      raise _Failure(base.PARSE, f"server sent non-JSON: {raw[:200]!r}", False) from None

  def _ask(self, req: base.Judgement, first: str, second: str) -> tuple[float | None, str | None, str | None]:
    """P("1") for one order, with retries. Returns (p_first, error_kind, error)."""
    if not self._take_budget():
      self.count(budget_refused=1)
      return None, base.BUDGET, f"request budget of {self.config.request_budget} new requests is spent"
    self.count(http_requests=1)
    body = self._body(req, first, second)
    c = self.config
    for attempt in range(c.max_retries + 1):
      try:
        return _preference(self._post(body)), None, None
      except _Failure as f:
        msg = self._redact(str(f))
        if not f.retryable or attempt == c.max_retries:
          return None, f.kind, msg
        delay = min(c.backoff * 2 ** attempt, c.backoff_max)
        if f.retry_after is not None:
          delay = min(max(delay, f.retry_after), c.backoff_max)
        delay *= 1.0 + 0.1 * random.random()  # jitter, so parallel workers do not retry in lockstep
        logging.warning("judge request failed (%s), retry %d/%d in %.2fs", msg, attempt + 1, c.max_retries, delay)
        self.count(retries=1)
        time.sleep(delay)
    raise AssertionError("unreachable")

  def _ask_cached(self, req: base.Judgement, first: str, second: str, key: str) -> tuple[dict, bool]:
    if self.cache is not None and (hit := self.cache.get(key)) is not None:
      return hit, True
    p, kind, err = self._ask(req, first, second)
    rec = {"p_first": p, "error_kind": kind, "error": err}
    # Answers (and parse failures, which temperature 0 would repeat) are kept; transport errors and
    # budget refusals are not, so a rerun asks again.
    if self.cache is not None and (p is not None or kind == base.PARSE):
      self.cache.put(key, rec)
    return rec, False

  # ---- the batch ------------------------------------------------------------------------------------

  def _judge(self, requests: list[base.Judgement]) -> list[base.JudgeResult]:
    plans = []  # per request: list of (key, a_first)
    todo: dict[str, tuple[base.Judgement, str, str]] = {}
    for req in requests:
      a_firsts = (True, False) if self.config.order == "both" else (example_order(req),)
      plan = []
      for a_first in a_firsts:
        first, second = (req.output_a, req.output_b) if a_first else (req.output_b, req.output_a)
        key = self._key(req, first, second)
        plan.append((key, a_first))
        todo.setdefault(key, (req, first, second))  # a repeated question is asked once
      plans.append(plan)

    answers: dict[str, tuple[dict, bool]] = {}
    with concurrent.futures.ThreadPoolExecutor(self.config.max_concurrency) as pool:
      futures = {pool.submit(self._ask_cached, *args, key): key for key, args in todo.items()}
      for fut in concurrent.futures.as_completed(futures):
        answers[futures[fut]] = fut.result()

    results = []
    for plan in plans:
      recs = [(answers[key][0], answers[key][1], a_first) for key, a_first in plan]
      cached = all(hit for _, hit, _ in recs)
      bad = next((rec for rec, _, _ in recs if rec["p_first"] is None), None)
      if bad is not None:
        results.append(base.JudgeResult.failure(bad["error_kind"], bad["error"], cached=cached))
        continue
      p_a = [rec["p_first"] if a_first else 1.0 - rec["p_first"] for rec, _, a_first in recs]
      results.append(base.JudgeResult(p_a=float(sum(p_a) / len(p_a)), cached=cached))
    self.count(cache_hits=sum(hit for _, hit in answers.values()))
    return results

  def close(self) -> None:
    if self.cache is not None:
      self.cache.close()


def _retry_after(value: str | None) -> float | None:
  try:
    return max(0.0, float(value)) if value else None
  except ValueError:
    return None  # an HTTP date: fall back to exponential backoff


def _preference(response: dict) -> float:
  """P("1") normalised over {"1", "2"} from a chat-completions response; raises a parse _Failure.

  The reply must read as "1" or "2" (garbage is a parse failure even if the logprobs list the digits).
  When logprobs are present, the first non-blank generated token's top alternatives give the soft
  preference; a label missing from the top list counts as probability 0.
  """
  try:
    choice = response["choices"][0]
    content = choice["message"].get("content") or ""
  except (KeyError, IndexError, TypeError, AttributeError):
    raise _Failure(base.PARSE, f"response has no choices[0].message: {str(response)[:200]}", False) from None
  answer = prompts.parse_answer(content)
  if answer is None:
    raise _Failure(base.PARSE, f"reply is not '1' or '2': {content[:100]!r}", False)
  tokens = ((choice.get("logprobs") or {}).get("content")) or []
  for tok in tokens:
    if not str(tok.get("token", "")).strip(" \t\n\"'`*([:"):
      continue
    mass = {"1": 0.0, "2": 0.0}
    for alt in tok.get("top_logprobs") or []:
      label = str(alt.get("token", "")).strip()
      if label in mass and alt.get("logprob") is not None:
        mass[label] += math.exp(float(alt["logprob"]))
    if mass["1"] + mass["2"] > 0:
      return mass["1"] / (mass["1"] + mass["2"])
    break
  return 1.0 if answer == "1" else 0.0
