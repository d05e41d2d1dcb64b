"""HTTP judge against a real local HTTP server with faults: nothing lost or counted twice, failures
reported by kind, retries and budget enforced, transient failures never cached, odd replies recorded
(never a crash), a wall-clock deadline per attempt, redirects refused, the API key written nowhere."""

from __future__ import annotations

import json
import logging
import math
import os
import time

import pytest

from xlra.eval.judges import base
from xlra.eval.judges.cache import JudgementCache
from xlra.eval.judges.http import HttpJudge, HttpJudgeConfig, example_order
from xlra.eval.judges.prompts import parse_answer

from eval.conftest import FakeOpenAI, leaked_key_chars  # tests/ is on sys.path (rootdir conftest)


def _requests(n: int, task: str = "dialog") -> list[base.Judgement]:
  # Output a is longer for even i, shorter for odd i; the fake judge prefers the longer one.
  out = []
  for i in range(n):
    long, short = f"answer {i} with many extra words", f"ans {i}"
    a, b = (long, short) if i % 2 == 0 else (short, long)
    out.append(base.Judgement(prompt=f"question {i}?", output_a=a, output_b=b, lang="de", task=task))
  return out


def _expected(req: base.Judgement, p_longer=0.8) -> float:
  return p_longer if len(req.output_a) > len(req.output_b) else 1 - p_longer


def _judge(server, tmp_path=None, **kw) -> HttpJudge:
  cfg = dict(base_url=server.base_url, model="fake", timeout=2.0, max_retries=3, backoff=0.01, max_concurrency=4)
  if tmp_path is not None:
    cfg["cache_path"] = str(tmp_path / "cache.jsonl")
  cfg.update(kw)
  return HttpJudge(HttpJudgeConfig(**cfg))


@pytest.mark.parametrize("order", ["random", "both"])
def test_logprob_preference_maps_back_through_the_order(fake_openai, order):
  reqs = _requests(12, task="summarization" if order == "both" else "dialog")
  res = _judge(fake_openai, order=order).judge(reqs)
  for req, r in zip(reqs, res):
    assert r.ok and not r.cached
    assert r.p_a == pytest.approx(_expected(req))  # 0.8 for the longer output whichever was shown first
  per = 2 if order == "both" else 1
  assert fake_openai.calls == per * len(reqs)
  if order == "random":  # the order is a function of the example, and both orders occur
    shown_first = [b["messages"][-1]["content"] for b in fake_openai.bodies]
    a_first = [any(f"1:\n{r.output_a}\n" in s for s in shown_first) for r in reqs]
    assert a_first == [example_order(r) for r in reqs]
    assert 0 < sum(a_first) < len(reqs)
  body = fake_openai.bodies[0]
  assert body["temperature"] == 0.0 and body["logprobs"] is True and body["top_logprobs"] == 5


def test_parsed_answer_without_logprobs(fake_openai):
  fake_openai.logprobs = False
  reqs = _requests(6)
  res = _judge(fake_openai, logprobs=False).judge(reqs)
  assert [r.p_a for r in res] == [1.0 if _expected(q) > 0.5 else 0.0 for q in reqs]
  assert "logprobs" not in fake_openai.bodies[0]


def test_500s_then_success_loses_and_duplicates_nothing(fake_openai, tmp_path):
  reqs = _requests(20)
  reqs += reqs[:3]  # the same question twice in a batch is asked once
  # Every third call fails: some questions fail once, some twice in a row.
  fake_openai.fault_fn = lambda n, body: ("status", 503) if n % 3 == 0 or n % 7 == 0 else None
  judge = _judge(fake_openai, tmp_path, max_retries=4)
  res = judge.judge(reqs)
  assert all(r.ok for r in res) and [r.p_a for r in res] == pytest.approx([_expected(q) for q in reqs])
  # Exactly one successful answer per distinct question; every failed call was retried.
  assert sorted(fake_openai.answered) == sorted(set(fake_openai.answered)) and len(fake_openai.answered) == 20
  assert judge.stats["http_requests"] == 20
  assert judge.stats["http_attempts"] == fake_openai.calls == 20 + judge.stats["retries"]
  assert judge.stats["retries"] > 0 and len(judge.cache) == 20


def test_429_with_retry_after_is_retried(fake_openai):
  fake_openai.faults = {1: ("status", 429, 0), 2: ("status", 429, 0)}
  judge = _judge(fake_openai, max_concurrency=1)
  res = judge.judge(_requests(2))
  assert all(r.ok for r in res) and judge.stats["retries"] == 2 and fake_openai.calls == 4


def test_hang_past_timeout_is_retried_then_reported(fake_openai, tmp_path):
  reqs = _requests(3)
  fake_openai.faults = {1: ("sleep", 1.5)}
  judge = _judge(fake_openai, tmp_path, timeout=0.3, max_concurrency=1)
  res = judge.judge(reqs)
  assert all(r.ok for r in res) and judge.stats["retries"] == 1
  # Without retries a hang is a timeout failure: reported, not cached, asked again on the next run.
  fake_openai.fault_fn = lambda n, body: ("sleep", 1.5)
  judge2 = _judge(fake_openai, tmp_path, timeout=0.3, max_retries=0)
  new = _requests(5)[3:]
  res2 = judge2.judge(new)
  assert [r.error_kind for r in res2] == [base.TIMEOUT] * 2 and all(r.p_a is None for r in res2)
  assert judge2.stats["failed_timeout"] == 2 and "ok" not in judge2.stats
  fake_openai.fault_fn = None
  calls = fake_openai.calls
  res3 = _judge(fake_openai, tmp_path).judge(reqs + new)
  assert all(r.ok for r in res3) and fake_openai.calls == calls + 2  # the three earlier answers came from cache
  assert [r.cached for r in res3] == [True] * 3 + [False] * 2


def test_garbage_is_a_parse_failure_counted_apart(fake_openai, tmp_path):
  reqs = _requests(6)
  fake_openai.faults = {2: ("garbage", "banana"), 4: ("garbage", "12 is my answer"),
                        5: ("json", lambda r: {**r, "choices": [{"message": {"content": 7}}]})}
  judge = _judge(fake_openai, tmp_path, max_concurrency=1)
  res = judge.judge(reqs)
  kinds = [r.error_kind for r in res]
  assert kinds == [None, base.PARSE, None, base.PARSE, base.PARSE, None]
  assert [r.p_a for r in res if r.ok] == pytest.approx([_expected(reqs[i]) for i in (0, 2, 5)])
  assert "banana" in res[1].error and "content is a int" in res[4].error
  assert judge.stats["failed_parse"] == 3 and judge.stats["ok"] == 3 and judge.stats["retries"] == 0
  # Parse failures are deterministic at temperature 0: they are cached, not re-asked.
  calls = fake_openai.calls
  again = _judge(fake_openai, tmp_path).judge(reqs)
  assert fake_openai.calls == calls and [r.error_kind for r in again] == kinds and all(r.cached for r in again)


def test_budget_caps_new_requests(fake_openai, tmp_path):
  judge = _judge(fake_openai, tmp_path, request_budget=3, max_concurrency=2)
  res = judge.judge(_requests(5))
  assert sum(r.ok for r in res) == 3 and sum(r.error_kind == base.BUDGET for r in res) == 2
  assert fake_openai.calls == 3 and judge.stats["budget_refused"] == 2
  # Cached answers cost nothing: a fresh run with budget 2 finishes the job.
  res2 = _judge(fake_openai, tmp_path, request_budget=2).judge(_requests(5))
  assert all(r.ok for r in res2) and fake_openai.calls == 5


def test_api_key_is_sent_but_written_nowhere(fake_openai, tmp_path, monkeypatch, caplog):
  secret = "sk-test-PLANTED-0123456789abcdef"
  monkeypatch.setenv("XLRA_TEST_JUDGE_KEY", secret)
  # The server echoes request headers (with the key) in its error bodies.
  fake_openai.faults = {1: ("status", 500), 2: ("status", 401)}
  caplog.set_level(logging.DEBUG)
  judge = _judge(fake_openai, tmp_path, api_key_env="XLRA_TEST_JUDGE_KEY", max_concurrency=1)
  res = judge.judge(_requests(3))
  assert fake_openai.headers[0]["Authorization"] == f"Bearer {secret}"
  assert res[0].error_kind == base.HTTP and "401" in res[0].error and "***" in res[0].error
  assert sum(r.ok for r in res) == 2
  cache_text = open(tmp_path / "cache.jsonl").read()
  for text in (cache_text, caplog.text, repr(judge), json.dumps(judge.stats), repr(res), str(judge.config)):
    assert secret not in text
  monkeypatch.delenv("XLRA_TEST_JUDGE_KEY")
  with pytest.raises(ValueError, match="XLRA_TEST_JUDGE_KEY"):
    _judge(fake_openai, api_key_env="XLRA_TEST_JUDGE_KEY")


def test_connection_refused_is_a_connection_failure():
  import socket
  s = socket.socket()
  s.bind(("127.0.0.1", 0))
  port = s.getsockname()[1]
  s.close()  # nothing listens there now
  cfg = HttpJudgeConfig(base_url=f"http://127.0.0.1:{port}/v1", model="m", max_retries=1, backoff=0.01)
  judge = HttpJudge(cfg)
  res = judge.judge(_requests(1))
  assert res[0].error_kind == base.CONNECTION and judge.stats["http_attempts"] == 2


def test_cache_survives_a_truncated_last_line(tmp_path):
  path = str(tmp_path / "c.jsonl")
  cache = JudgementCache(path)
  cache.put("k1", {"p_first": 0.25})
  cache.put("k2", {"p_first": 1.0})
  cache.close()
  with open(path, "ab") as f:  # a write killed halfway
    f.write(b'{"key": "k3", "p_fi')
  cache = JudgementCache(path)
  assert cache.unreadable_lines == 1 and cache.get("k1")["p_first"] == 0.25 and "k3" not in cache
  cache.put("k3", {"p_first": 0.5})
  cache.close()
  cache = JudgementCache(path)
  assert cache.get("k3")["p_first"] == 0.5 and len(cache) == 3 and cache.unreadable_lines == 1
  assert os.path.getsize(path) > 0


@pytest.mark.parametrize("text,want", [("1", "1"), (" 2", "2"), ("Output 2", "2"), ("(1)", "1"), ("1.", "1"),
                                       ('"2"', "2"), ("12", None), ("1.5", None), ("banana", None), ("", None),
                                       ("Summary: 1", "1"), ("3", None)])
def test_parse_answer(text, want):
  assert parse_answer(text) == want


# ---- transient replies, odd replies, the cache's own validation ------------------------------------

def _set_logprob(value):
  def edit(resp):
    resp["choices"][0]["logprobs"]["content"][0]["top_logprobs"][0]["logprob"] = value  # the "1" entry
    return resp
  return edit


def _content_parts(resp):
  message = resp["choices"][0]["message"]
  message["content"] = [{"type": "text", "text": message["content"]}]
  return resp


BAD_REPLIES = [("raw", b"<html><body><h1>502 Bad Gateway</h1></body></html>"),
               ("raw", b'{"id": "x", "choices": [{"message": {"content": "1"'),  # cut off
               ("json", lambda r: {**r, "choices": []}),
               ("json", lambda r: {"error": {"message": "overloaded"}})]


def test_bad_replies_are_retried_and_never_cached(fake_openai, tmp_path):
  reqs = _requests(len(BAD_REPLIES))
  fake_openai.faults = {2 * i + 1: f for i, f in enumerate(BAD_REPLIES)}  # each question's first attempt
  judge = _judge(fake_openai, tmp_path, max_concurrency=1)
  res = judge.judge(reqs)
  assert [r.p_a for r in res] == pytest.approx([_expected(q) for q in reqs])
  assert judge.stats["retries"] == len(BAD_REPLIES) and fake_openai.paid_twice() == 0
  # Without retries they are failures of their own kind, not cached: the next run asks again and heals.
  fake_openai.faults = {fake_openai.calls + i: f for i, f in enumerate(BAD_REPLIES, 1)}
  new = _requests(2 * len(BAD_REPLIES))[len(BAD_REPLIES):]
  res = _judge(fake_openai, tmp_path, max_retries=0, max_concurrency=1).judge(new)
  assert [r.error_kind for r in res] == [base.BAD_REPLY] * len(new) and "502 Bad Gateway" in res[0].error
  calls = fake_openai.calls
  res = _judge(fake_openai, tmp_path).judge(reqs + new)
  assert all(r.ok for r in res) and fake_openai.calls == calls + len(new)
  assert fake_openai.paid_twice() == 0


def test_invalid_cache_lines_are_asked_again_not_a_crash(fake_openai, tmp_path):
  reqs = _requests(4)
  _judge(fake_openai, tmp_path).judge(reqs)
  path = tmp_path / "cache.jsonl"
  recs = [json.loads(line) for line in open(path)]
  recs[0]["p_first"] = math.nan  # what an Infinity logprob used to leave behind
  recs[1].update(p_first=None, error_kind=base.PARSE, error="server sent non-JSON")  # an old "final" bad reply
  del recs[1]["final"]
  recs[2]["p_first"] = 1.5
  path.write_text("".join(json.dumps(r) + "\n" for r in recs))
  calls = fake_openai.calls
  judge = _judge(fake_openai, tmp_path)
  assert judge.cache.invalid_lines == 3 and len(judge.cache) == 1
  res = judge.judge(reqs)
  assert [r.p_a for r in res] == pytest.approx([_expected(q) for q in reqs])
  assert fake_openai.calls == calls + 3 and [r.cached for r in res].count(True) == 1
  judge.close()
  assert _judge(fake_openai, tmp_path).cache.invalid_lines == 3  # the new answers, written later, win


@pytest.mark.parametrize("edit,want_label", [(_content_parts, False), (_set_logprob("abc"), True),
                                             (_set_logprob(1e6), True), (_set_logprob(math.inf), True),
                                             (_set_logprob(math.nan), True), (_set_logprob(True), True)])
def test_odd_replies_are_recorded_never_a_crash(fake_openai, tmp_path, edit, want_label):
  reqs = _requests(2)
  fake_openai.faults = {1: ("json", edit), 2: ("json", edit)}
  judge = _judge(fake_openai, tmp_path, max_concurrency=1)
  res = judge.judge(reqs)
  # Bad logprobs: the reply's label (the model's definite answer) is used, counted, and cached.
  want = [round(_expected(q)) if want_label else _expected(q) for q in reqs]
  assert [r.p_a for r in res] == pytest.approx(want) and judge.stats["bad_logprobs"] == (2 if want_label else 0)
  judge.close()
  again = _judge(fake_openai, tmp_path).judge(reqs)
  assert fake_openai.calls == 2 and all(r.cached for r in again) and [r.p_a for r in again] == pytest.approx(want)


def test_minus_infinity_is_a_probability_of_zero(fake_openai):
  fake_openai.faults = {1: ("json", _set_logprob(-math.inf))}  # the "1" entry of a reply reading "1"
  req = _requests(1)[0]
  judge = _judge(fake_openai)
  res = judge.judge([req])
  assert res[0].p_a == (0.0 if example_order(req) else 1.0) and judge.stats["bad_logprobs"] == 0


# ---- the deadline and the key ---------------------------------------------------------------------

def test_a_trickling_server_is_cut_at_the_deadline_and_retried(fake_openai):
  fake_openai.faults = {1: ("trickle", 0.5)}  # a ~500-byte answer at a byte every half second: minutes
  judge = _judge(fake_openai, timeout=1.0, max_retries=0)
  start = time.monotonic()
  res = judge.judge(_requests(1))
  assert time.monotonic() - start < 2.0 and res[0].error_kind == base.TIMEOUT
  fake_openai.faults = {2: ("trickle", 0.5)}
  judge = _judge(fake_openai, timeout=1.0, max_retries=1)
  start = time.monotonic()
  res = judge.judge(_requests(1))
  assert time.monotonic() - start < 3.0 and res[0].ok and judge.stats["retries"] == 1


KEY = "sk-test-PLANTED-0123456789abcdefghijklmn"


def _straddling(cut: int, prefix: int) -> list[int]:
  """Offsets that put the key (after `prefix` characters of its header) across character `cut`."""
  start = cut - prefix
  return [start - len(KEY) // 2, start - 3, start - len(KEY) + 2]


@pytest.mark.parametrize("fault", [("echo", 500, o) for o in _straddling(300, len("Bearer "))]
                         + [("raw", b"x" * o + b"{auth}" + b"y" * 300) for o in _straddling(200, len("Bearer "))]
                         + [("garbage", "x" * o + "{auth}") for o in _straddling(100, len("Bearer "))])
def test_key_is_redacted_before_any_cut(fake_openai, tmp_path, monkeypatch, caplog, fault):
  monkeypatch.setenv("XLRA_TEST_JUDGE_KEY", KEY)
  caplog.set_level(logging.DEBUG)
  fake_openai.fault_fn = lambda n, body: fault
  judge = _judge(fake_openai, tmp_path, api_key_env="XLRA_TEST_JUDGE_KEY", max_retries=1)
  res = judge.judge(_requests(1))
  judge.close()
  assert not res[0].ok and fake_openai.calls == (1 if fault[0] == "garbage" else 2)
  written = repr(res) + caplog.text + (open(tmp_path / "cache.jsonl").read() if fault[0] == "garbage" else "")
  assert leaked_key_chars(written, KEY) == 0


def test_redirects_are_refused_and_the_key_goes_nowhere_else(fake_openai, monkeypatch, caplog):
  monkeypatch.setenv("XLRA_TEST_JUDGE_KEY", KEY)
  elsewhere = FakeOpenAI()
  try:
    fake_openai.fault_fn = lambda n, body: ("redirect", elsewhere.base_url + "/chat/completions?token=t")
    judge = _judge(fake_openai, api_key_env="XLRA_TEST_JUDGE_KEY")
    res = judge.judge(_requests(2))
    assert [r.error_kind for r in res] == [base.HTTP] * 2 and judge.stats["retries"] == 0
    assert elsewhere.calls == 0 and elsewhere.with_key() == 0 and fake_openai.with_key() == 2
    origin = elsewhere.base_url.removesuffix("/v1")
    assert f"redirects to {origin}: not followed" in res[0].error and "token" not in res[0].error
  finally:
    elsewhere.close()


@pytest.mark.parametrize("field,value", [("backoff", -1.0), ("backoff_max", -1.0), ("backoff", math.nan),
                                         ("timeout", math.inf), ("timeout", 0.0), ("max_tokens", 0),
                                         ("temperature", -0.5), ("max_retries", -1)])
def test_config_values_that_would_fail_mid_run_are_refused(field, value):
  with pytest.raises(ValueError, match=f"HttpJudgeConfig.{field}="):
    HttpJudgeConfig(base_url="http://127.0.0.1:1/v1", model="m", **{field: value})
