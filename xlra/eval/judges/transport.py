"""The HTTP judge's transport: urllib with a wall-clock deadline per attempt and no redirects.

    with Deadline(seconds) as deadline:
      body = opener(deadline).open(request, timeout=seconds).read()
    if deadline.passed: ...  # whatever came back was cut off

Redirects are refused because urllib would resend the Authorization header wherever Location points;
the refused 3xx surfaces as an HTTPError for the caller to report.
"""

from __future__ import annotations

import socket
import threading
import urllib.parse
import urllib.request


class Deadline:
  """A wall-clock bound on one HTTP attempt. Socket timeouts bound each read only, so a server sending a
  byte every half second would hold an attempt forever; when the deadline passes, a timer shuts the
  attempt's socket down, which ends any blocked read."""

  def __init__(self, seconds: float):
    self.passed = False
    self._sock: socket.socket | None = None
    self._lock = threading.Lock()
    self._timer = threading.Timer(seconds, self._expire)
    self._timer.daemon = True

  def __enter__(self) -> "Deadline":
    self._timer.start()
    return self

  def __exit__(self, *exc) -> None:
    self._timer.cancel()

  def watch(self, sock: socket.socket) -> None:
    with self._lock:
      self._sock, passed = sock, self.passed
    if passed:
      _shutdown(sock)

  def _expire(self) -> None:
    with self._lock:
      self.passed, sock = True, self._sock
    if sock is not None:
      _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
  try:
    sock.shutdown(socket.SHUT_RDWR)
  except OSError:  # already closed by its reader: nothing left to interrupt
    pass


class _Watched:
  """Handler mix-in: every connection it opens is watched by the attempt's deadline."""

  def __init__(self, deadline: Deadline):
    super().__init__()
    self.deadline = deadline

  def do_open(self, http_class, req, **kwargs):
    deadline = self.deadline

    class Connection(http_class):
      def connect(self):
        super().connect()
        deadline.watch(self.sock)

    return super().do_open(Connection, req, **kwargs)


class _WatchedHTTP(_Watched, urllib.request.HTTPHandler):
  pass


class _WatchedHTTPS(_Watched, urllib.request.HTTPSHandler):
  pass


class _NoRedirects(urllib.request.HTTPRedirectHandler):
  """urllib follows a 3xx by default and resends the Authorization header wherever Location points."""

  def redirect_request(self, req, fp, code, msg, headers, newurl):
    return None  # urllib then raises the 3xx as an HTTPError, reported as a failure


def origin(url: str, location: str) -> str:
  """scheme://host[:port] of a Location header (no path or query: they may carry tokens)."""
  try:
    parts = urllib.parse.urlsplit(urllib.parse.urljoin(url, location))
    port = f":{parts.port}" if parts.port else ""
  except ValueError:  # a port that is no number: the redirect is refused all the same
    return "an unreadable Location"
  return f"{parts.scheme}://{parts.hostname}{port}"


def opener(deadline: Deadline) -> urllib.request.OpenerDirector:
  """A urllib opener whose connections the deadline watches and which follows no redirect."""
  return urllib.request.build_opener(_NoRedirects, _WatchedHTTP(deadline), _WatchedHTTPS(deadline))
