"""Pairwise judge over an OpenAI-compatible chat-completions server (vLLM, TGI, `transformers serve`,
hosted APIs), with only the standard library.

What makes it safe to point at a paid API: every definite answer is cached on disk before it is used
(a rerun or a resumed evaluation sends nothing already answered), a request budget caps the number of
new requests, concurrency is bounded, and each attempt has a wall-clock deadline. Transient failures
(408/429/5xx, timeouts, connection errors, and 200s that are no chat completion: an HTML error page,
cut-off JSON, no choices) are retried with exponential backoff and never cached, so a rerun asks them
again. Only a well-formed reply (one with choices[0].message) is final: its probability when it reads
"1"/"2", a parse failure when its text is anything else (temperature 0 would repeat it).

A reply reading "1"/"2" whose logprobs are no log-probabilities (a string, NaN, 1e6, Infinity) gives its label
(1 or 0), counted in stats["bad_logprobs"] and logged: the text is the model's definite answer, paid
for, and the hard win rate it feeds is the same; asking again would pay for the same broken numbers.

The API key is read from an environment variable and sent only in the Authorization header. Redirects
are never followed (urllib would resend the header to wherever Location points), and any server text
kept in a message is redacted before it is cut, so no part of the key survives a cut.
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
from xlra.eval.judges.transport import Deadline, opener, origin

ORDERS = ("random", "both")
ERROR_BODY_READ = 65536  # bytes of an error body read for its message (redacted whole, then cut)


@dataclasses.dataclass
class HttpJudgeConfig:
  base_url: str  # e.g. http://127.0.0.1:8000/v1 (the endpoint is base_url + /chat/completions)
  model: str
  api_key_env: str = ""  # name of the environment variable holding the key; "" sends no key
  timeout: float = 60.0  # seconds per HTTP attempt, wall clock: connecting, sending and reading it all
  max_retries: int = 5  # retries after the first attempt, for transient failures
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
    # Each of these would otherwise fail mid-run, after requests were paid for (time.sleep(-1), NaN waits).
    finite = lambda x: isinstance(x, (int, float)) and math.isfinite(x)
    for name, ok, need in (("timeout", finite(self.timeout) and self.timeout > 0, "a finite number > 0"),
                           ("max_retries", self.max_retries >= 0, ">= 0"),
                           ("backoff", finite(self.backoff) and self.backoff >= 0, "a finite number >= 0"),
                           ("backoff_max", finite(self.backoff_max) and self.backoff_max >= 0, "a finite number >= 0"),
                           ("max_concurrency", self.max_concurrency >= 1, ">= 1"),
                           ("request_budget", self.request_budget >= 0, ">= 0 (0 = unlimited)"),
                           ("temperature", finite(self.temperature) and self.temperature >= 0, "a finite number >= 0"),
                           ("max_tokens", self.max_tokens >= 1, ">= 1"),
                           ("top_logprobs", self.top_logprobs >= 0, ">= 0")):
      if not ok:
        raise ValueError(f"HttpJudgeConfig.{name}={getattr(self, name)!r}: must be {need}")


class _Failure(Exception):
  """One attempt that gave no answer; retryable: worth another attempt in this run. Of all kinds only a
  parse failure is final (the model's own reply), so only it is cached."""

  def __init__(self, kind: str, message: str, retryable: bool, retry_after: float | None = None):
    super().__init__(message)
    self.kind, self.retryable, self.retry_after = kind, retryable, retry_after


def example_order(req: base.Judgement) -> bool:
  """True when A is shown first. A fixed function of the example, so reruns ask the same question."""
  digest = hashlib.sha256("\x00".join((req.prompt, req.output_a, req.output_b)).encode("utf-8")).digest()
  return digest[0] % 2 == 0


def cache_record_problem(rec: dict) -> str | None:
  """Why a cache record is no final answer, or None. Final: a probability in [0, 1], or a parse failure
  marked final (earlier versions also cached bad replies as parse failures: those are asked again)."""
  p = rec.get("p_first")
  if p is None:
    if rec.get("error_kind") == base.PARSE and rec.get("final") is True:
      return None
    return f"a {rec.get('error_kind')} failure, not a final answer"
  if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
    return f"p_first={p!r} is not a probability"
  return None


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
    self.cache = JudgementCache(config.cache_path, cache_record_problem) if config.cache_path else None
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

  def _excerpt(self, text: str, limit: int) -> str:
    """Server text fit to keep in a message: redacted whole first, so a key across the cut goes too."""
    return self._redact(text)[:limit]

  def _take_budget(self) -> bool:
    with self._budget_lock:
      if self.config.request_budget and self._sent >= self.config.request_budget:
        return False
      self._sent += 1
      return True

  def _post(self, body: dict) -> dict:
    """One HTTP attempt within the wall-clock deadline; raises _Failure saying whether a retry may help."""
    url = self.config.base_url.rstrip("/") + "/chat/completions"
    headers = {"Content-Type": "application/json"}
    if self._api_key:
      headers["Authorization"] = f"Bearer {self._api_key}"
    request = urllib.request.Request(url, data=json.dumps(body).encode("utf-8"), headers=headers, method="POST")
    self.count(http_attempts=1)
    try:
      with Deadline(self.config.timeout) as deadline:
        raw = self._exchange(request, url, deadline)
    except _Failure:
      if not deadline.passed:
        raise
    if deadline.passed:  # whatever came back was cut off by the deadline
      raise _Failure(base.TIMEOUT, f"no complete answer from {url} within {self.config.timeout}s", True)
    try:
      return json.loads(raw)
    except ValueError:  # also a body that is not UTF-8
      text = self._excerpt(raw.decode("utf-8", "replace"), 200)
      raise _Failure(base.BAD_REPLY, f"{url} answered 200 with a body that is not JSON (an HTML error page? "
                                     f"cut off?): {text!r}", True) from None

  def _exchange(self, request: urllib.request.Request, url: str, deadline: Deadline) -> bytes:
    try:
      with opener(deadline).open(request, timeout=self.config.timeout) as resp:
        return resp.read()
    except urllib.error.HTTPError as e:
      if 300 <= e.code < 400:
        where = origin(url, e.headers.get("Location", "") if e.headers else "")
        raise _Failure(base.HTTP, f"HTTP {e.code} from {url} redirects to {self._excerpt(where, 200)}: not "
                                  "followed, so the API key goes nowhere else; set base_url to the address that "
                                  "answers", False) from None
      try:
        detail = self._excerpt(e.read(ERROR_BODY_READ).decode("utf-8", "replace"), 300)
      except (OSError, http.client.HTTPException):  # the error body itself was cut off
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

  def _ask(self, req: base.Judgement, first: str, second: str) -> tuple[dict, bool]:
    """P("1") for one order, with retries: ({p_first, error_kind, error}, whether it is final)."""
    if not self._take_budget():
      self.count(budget_refused=1)
      msg = f"request budget of {self.config.request_budget} new requests is spent"
      return {"p_first": None, "error_kind": base.BUDGET, "error": msg}, False
    self.count(http_requests=1)
    body = self._body(req, first, second)
    c = self.config
    for attempt in range(c.max_retries + 1):
      try:
        return {"p_first": self._preference(self._post(body)), "error_kind": None, "error": None}, True
      except _Failure as f:
        msg = self._redact(str(f))
        if not f.retryable or attempt == c.max_retries:
          return {"p_first": None, "error_kind": f.kind, "error": msg}, f.kind == base.PARSE
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
    rec, final = self._ask(req, first, second)
    # Only final answers are kept; every other failure is asked again by the next run.
    if self.cache is not None and final:
      self.cache.put(key, {**rec, "final": True})
    return rec, False

  def _preference(self, response) -> float:
    """P("1") normalised over {"1", "2"} from a chat-completions response; raises a _Failure.

    The reply must read as "1" or "2" (garbage is a parse failure even if the logprobs list the digits).
    When logprobs are present, the first non-blank generated token's top alternatives give the soft
    preference; a label missing from the top list counts as probability 0.
    """
    try:
      choice = response["choices"][0]
      content = choice["message"].get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
      raise _Failure(base.BAD_REPLY, "reply has no choices[0].message (an overloaded server or a proxy?): "
                                     f"{self._excerpt(str(response), 200)}", True) from None
    text = _content_text(content)
    if text is None:
      raise _Failure(base.PARSE, f"choices[0].message.content is a {type(content).__name__}, not text", False)
    answer = prompts.parse_answer(text)
    if answer is None:
      raise _Failure(base.PARSE, f"reply is not '1' or '2': {self._excerpt(text, 100)!r}", False)
    label_p = 1.0 if answer == "1" else 0.0
    logprobs = choice.get("logprobs")
    tokens = logprobs.get("content") if isinstance(logprobs, dict) else None
    for tok in tokens if isinstance(tokens, list) else ():
      if not isinstance(tok, dict) or not str(tok.get("token", "")).strip(" \t\n\"'`*([:"):
        continue
      mass = {"1": 0.0, "2": 0.0}
      alts = tok.get("top_logprobs")
      for alt in alts if isinstance(alts, list) else ():
        label = str(alt.get("token", "")).strip() if isinstance(alt, dict) else ""
        lp = alt.get("logprob") if label in mass else None
        if lp is None:
          continue
        # -Infinity is a valid log-probability (of 0); NaN, +Infinity and 1e6 are not.
        if isinstance(lp, bool) or not isinstance(lp, (int, float)) or math.isnan(lp) or lp > 1e-6:
          self.count(bad_logprobs=1)
          logging.warning("judge reply reads %r but lists the logprob %s for %r, not a number <= 0: "
                          "using the answer without its probability", answer, self._excerpt(repr(lp), 50), label)
          return label_p
        mass[label] += math.exp(min(float(lp), 0.0))  # rounding may give a certain label 1e-9
      if mass["1"] + mass["2"] > 0:
        return mass["1"] / (mass["1"] + mass["2"])
      break
    return label_p

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


def _content_text(content) -> str | None:
  """The text of a message's content: a string, null (no text), or OpenAI's list of parts
  ([{"type": "text", "text": "1"}]); None for anything else."""
  if content is None or isinstance(content, str):
    return content or ""
  if isinstance(content, list) and all(isinstance(part, dict) for part in content):
    return "".join(str(part.get("text", "")) for part in content if part.get("type") == "text")
  return None
