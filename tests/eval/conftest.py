"""A fake OpenAI chat-completions endpoint: a real HTTP server on 127.0.0.1 in a thread.

Its judge prefers the longer of the two outputs with probability `p_longer`, so a test knows the right
answer for either presentation order. `faults` maps a call number (1-based, over all calls) or a
predicate to a fault: ("status", code[, retry_after]), ("sleep", seconds), ("garbage", text), ("raw", bytes).
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
    self.lock = threading.Lock()
    self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
    self.server.daemon_threads = True
    self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
    self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
    self.thread.start()

  def close(self):
    self.server.shutdown()
    self.server.server_close()

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

      def _send(self, code, payload: bytes, headers=()):
        try:
          self.send_response(code)
          self.send_header("Content-Type", "application/json")
          self.send_header("Content-Length", str(len(payload)))
          for k, v in headers:
            self.send_header(k, v)
          self.end_headers()
          self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
          pass  # the client gave up (timeout test)

      def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with fake.lock:
          fake.calls += 1
          n = fake.calls
          fake.bodies.append(body)
          fake.headers.append(dict(self.headers))
        fault = fake.faults.get(n) or (fake.fault_fn(n, body) if fake.fault_fn else None)
        if fault and fault[0] == "status":
          headers = [("Retry-After", str(fault[2]))] if len(fault) > 2 else []
          echo = json.dumps({"error": "try later", "echo": dict(self.headers)}).encode()  # a careless server
          return self._send(fault[1], echo, headers)
        if fault and fault[0] == "sleep":
          time.sleep(fault[1])
        if fault and fault[0] == "raw":
          return self._send(200, fault[1])
        user = body["messages"][-1]["content"]
        first, second = _OUTPUTS.search(user).groups()
        resp = fake.answer(first, second)
        if fault and fault[0] == "garbage":
          resp["choices"][0]["message"]["content"] = fault[1]
        else:
          with fake.lock:
            fake.answered.append((first, second))
        self._send(200, json.dumps(resp).encode())

    return Handler


@pytest.fixture
def fake_openai():
  server = FakeOpenAI()
  yield server
  server.close()
