"""A fake OpenAI chat-completions endpoint: a real HTTP server on 127.0.0.1 in a thread.

Its judge prefers the longer of the two outputs with probability `p_longer`, so a test knows the right
answer for either presentation order. `faults` maps a call number (1-based, over all calls) or a
predicate to a fault: ("status", code[, retry_after]), ("sleep", seconds), ("garbage", text), ("raw", bytes),
("json", fn) (the answer dict through fn, sent with Python's json: NaN/Infinity as such), ("redirect",
location) (a 302), ("echo", code, offset) (a text body with the request's Authorization header at
character `offset`), ("trickle", seconds) (the answer one byte every `seconds`). "{auth}" in a garbage
text or raw body becomes the request's Authorization header, as a careless server would echo it.
"""

from __future__ import annotations

import http.server
import json
import math
import re
import threading
import time

import pytest

_OUTPUTS = re.compile(r"(?:Output|Summary) 1:\n(.*?)\n\n(?:Output|Summary) 2:\n(.*?)\n\n", re.S)


class FakeOpenAI:
  def __init__(self, p_longer: float = 0.8, logprobs: bool = True):
    self.p_longer, self.logprobs = p_longer, logprobs
    self.faults: dict = {}
    self.fault_fn = None  # (call_no, body) -> fault or None
    self.calls = 0
    self.bodies: list[dict] = []
    self.headers: list[dict] = []
    self.answered: list[tuple[str, str]] = []  # (first, second) of every 200 with a valid answer
    self.billed: list[str] = []  # the question (prompt and both outputs) of every 200 carrying a completion
    self.lock = threading.Lock()
    self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
    self.server.daemon_threads = True
    self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
    self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
    self.thread.start()

  def close(self):
    self.server.shutdown()
    self.server.server_close()

  def paid_twice(self) -> int:
    """Completions paid for a question that had been answered (a paid API bills each)."""
    return len(self.billed) - len(set(self.billed))

  def with_key(self) -> int:
    """Requests that carried an Authorization header."""
    return sum("Authorization" in h for h in self.headers)

  def answer(self, first: str, second: str) -> dict:
    p1 = self.p_longer if len(first) > len(second) else 1 - self.p_longer if len(first) < len(second) else 0.5
    content = "1" if p1 >= 0.5 else "2"
    choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
    if self.logprobs:
      top = [{"token": "1", "logprob": math.log(p1)}, {"token": "2", "logprob": math.log(1 - p1)},
             {"token": "The", "logprob": -9.0}]
      choice["logprobs"] = {"content": [{"token": content, "logprob": max(t["logprob"] for t in top[:2]),
                                         "top_logprobs": top}]}
    return {"id": "x", "object": "chat.completion", "model": "fake", "choices": [choice]}

  def _handler(self):
    fake = self

    class Handler(http.server.BaseHTTPRequestHandler):
      def log_message(self, *args):  # keep test output quiet
        pass

      def _send(self, code, payload: bytes, headers=(), trickle: float = 0.0):
        try:
          self.send_response(code)
          self.send_header("Content-Type", "application/json")
          self.send_header("Content-Length", str(len(payload)))
          for k, v in headers:
            self.send_header(k, v)
          self.end_headers()
          if not trickle:
            self.wfile.write(payload)
          for i in range(len(payload) if trickle else 0):
            self.wfile.write(payload[i:i + 1])
            self.wfile.flush()
            time.sleep(trickle)
          return True
        except (BrokenPipeError, ConnectionResetError):
          return False  # the client gave up (timeout test)

      def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with fake.lock:
          fake.calls += 1
          n = fake.calls
          fake.bodies.append(body)
          fake.headers.append(dict(self.headers))
        fault = fake.faults.get(n) or (fake.fault_fn(n, body) if fake.fault_fn else None)
        auth = self.headers.get("Authorization", "")
        if fault and fault[0] == "status":
          headers = [("Retry-After", str(fault[2]))] if len(fault) > 2 else []
          echo = json.dumps({"error": "try later", "echo": dict(self.headers)}).encode()  # a careless server
          return self._send(fault[1], echo, headers)
        if fault and fault[0] == "echo":
          return self._send(fault[1], ("x" * fault[2] + auth + "y" * 500).encode())
        if fault and fault[0] == "redirect":
          return self._send(302, b"", [("Location", fault[1])])
        if fault and fault[0] == "sleep":
          time.sleep(fault[1])
        if fault and fault[0] == "raw":
          return self._send(200, fault[1].replace(b"{auth}", auth.encode()))
        user = body["messages"][-1]["content"]
        first, second = _OUTPUTS.search(user).groups()
        resp = fake.answer(first, second)
        if fault and fault[0] == "garbage":
          resp["choices"][0]["message"]["content"] = fault[1].replace("{auth}", auth)
        elif fault and fault[0] == "json":
          resp = fault[1](resp)
        else:
          with fake.lock:
            fake.answered.append((first, second))
        trickle = fault[1] if fault and fault[0] == "trickle" else 0.0
        if self._send(200, json.dumps(resp).encode(), trickle=trickle) and isinstance(resp, dict) and resp.get("choices"):
          with fake.lock:  # delivered: a paid API bills it
            fake.billed.append(user)

    return Handler


def leaked_key_chars(text: str, key: str, shortest: int = 8) -> int:
  """Length of the longest piece of `key` (at least `shortest` characters) found in `text`, else 0."""
  for n in range(len(key), shortest - 1, -1):
    if any(key[i:i + n] in text for i in range(len(key) - n + 1)):
      return n
  return 0


@pytest.fixture
def fake_openai():
  server = FakeOpenAI()
  yield server
  server.close()
