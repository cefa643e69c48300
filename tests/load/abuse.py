#!/usr/bin/env python3
"""The server's abuse check (issue #18; run by hand, not by ctest; figures in docs/reliability.md):
    python3 tests/load/abuse.py BUILD_DIR [--slow N]
Starts `bitrun serve` on a copy of the built-in model, then, each bounded in count and time: oversized chunked
bodies, ambiguous framing, thousands of headers, slow clients holding connections, 1 MB prompts, malformed JSON,
and the model file truncated under the running server. A thread polls /health every 0.25 s throughout. Reports
requests sent, unexpected answers, the server's peak RSS, whether /health always answered within 2 s, and whether
the server survived; exits 1 on any failure."""
import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Server:
    def __init__(self, build, model):
        self.log = tempfile.NamedTemporaryFile(prefix="bitrun-abuse-", suffix=".log", delete=False)
        self.proc = subprocess.Popen([os.path.join(build, "bin", "bitrun"), "serve", "--model", model, "--port", "0",
                                      "--set", "log.level=info", "--set", "server.max_body_bytes=1048576",
                                      "--set", "server.request_read_timeout_s=5"],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.port = None
        deadline = time.time() + 30
        while time.time() < deadline and self.port is None:
            time.sleep(0.1)
            for line in open(self.log.name, errors="replace"):
                m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
                if m:
                    self.port = int(m.group(1))
        if self.port is None:
            raise SystemExit("could not find the server's port; log: " + open(self.log.name).read())
        while time.time() < deadline and status(self.port, "GET", "/health")[0] != 200:
            time.sleep(0.1)

    def rss_kb(self, field="VmRSS"):
        try:
            for line in open(f"/proc/{self.proc.pid}/status"):
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        except OSError:
            return -1
        return -1

    def alive(self):
        return self.proc.poll() is None


def raw(port, data, timeout=10.0, read=True):
    """Sends bytes on a new connection; returns the status line's code (or None) and the answer's start."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        for chunk in (data if isinstance(data, list) else [data]):
            try:
                s.sendall(chunk)
            except OSError:
                break   # the server answered and closed early: read what it said
        if not read:
            return None, b""
        got = b""
        try:
            while b"\r\n\r\n" not in got:
                part = s.recv(65536)
                if not part:
                    break
                got += part
        except OSError:
            pass
        m = re.match(rb"HTTP/1\.[01] (\d{3})", got)
        return (int(m.group(1)) if m else None), got[:300]
    finally:
        s.close()


def status(port, method, path, body=None, timeout=10.0):
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    try:
        return raw(port, head.encode() + b"\r\n" + (body or b""), timeout)
    except OSError as e:
        return None, str(e).encode()


class HealthWatch(threading.Thread):
    """Polls /health; records the slowest answer and every failure."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.stop, self.worst, self.failures, self.polls = port, False, 0.0, [], 0

    def run(self):
        while not self.stop:
            t0 = time.time()
            code, _ = status(self.port, "GET", "/health", timeout=2.0)
            took = time.time() - t0
            self.polls += 1
            self.worst = max(self.worst, took)
            if code not in (200,):
                self.failures.append((time.strftime("%H:%M:%S"), code, round(took, 2)))
            time.sleep(0.25)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--slow", type=int, default=100, help="slow connections to open (default 100)")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="bitrun-abuse-")
    model = os.path.join(work, "model.gguf")
    shutil.copy(os.path.join(ROOT, "models", "default.gguf"), model)
    server = Server(args.build, model)
    port = server.port
    watch = HealthWatch(port)
    watch.start()
    sent, unexpected, report = 0, [], []

    def expect(case, code, allowed):
        nonlocal sent
        sent += 1
        if code not in allowed:
            unexpected.append((case, code))

    # 1. A 64 MB chunked body: refused at the 1 MB limit, never buffered.
    chunk = b"100000\r\n" + b" " * 0x100000 + b"\r\n"
    code, _ = raw(port, [b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                         b"Content-Type: application/json\r\n\r\n"] + [chunk] * 64)
    expect("64 MB chunked body", code, (413,))
    report.append(f"64 MB chunked body: {code}, RSS after {server.rss_kb() // 1024} MB")
    # 2. Ambiguous framing and unknown codings.
    for framing in (b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", b"Transfer-Encoding: gzip, chunked\r\n"):
        code, _ = raw(port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n" + framing + b"\r\n0\r\n\r\n")
        expect("ambiguous framing", code, (400,))
    # 3. 5,000 headers.
    code, _ = raw(port, b"GET /health HTTP/1.1\r\nHost: x\r\n" +
                  b"".join(b"X-H%d: v\r\n" % i for i in range(5000)) + b"\r\n")
    expect("5000 headers", code, (200, 400, 413, 431, None))
    report.append(f"5,000 headers: {code}")
    # 4. 1 MB prompts (ten, sequentially) and malformed JSON (1,000): 400s, no 500, RSS back down.
    big = json.dumps({"prompt": "a " * 500000, "max_tokens": 4}).encode()
    rss_before = server.rss_kb()
    for _ in range(10):
        code, _ = status(port, "POST", "/v1/completions", big)
        expect("1 MB prompt", code, (400,))
    time.sleep(1.0)
    report.append(f"10 x 1 MB prompts: RSS {rss_before // 1024} -> {server.rss_kb() // 1024} MB")
    shapes = [b"{", b"[]", b'{"prompt":', b'{"prompt":{}}', b'{"messages":[{"role":1}]}', b"\x00\xff",
              b'{"prompt":"x","max_tokens":1e999}', b'{"prompt":"x","temperature":"hot"}', b'"' * 1000]
    for i in range(1000):
        code, _ = status(port, "POST", "/v1/chat/completions" if i % 2 else "/v1/completions",
                         shapes[i % len(shapes)] + b" " * (i % 7))
        expect("malformed JSON", code, (400, 413))
    # 5. Slow clients: N connections that send one header byte a second, while /health must keep answering; the
    #    server closes them at server.request_read_timeout_s (5 s here).
    slow, opened = [], []
    for _ in range(args.slow):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n")
            slow.append(s)
            opened.append(time.time())
        except OSError:
            break
    failures_before = len(watch.failures)
    t_start = time.time()
    closed_at = {}   # seconds from each connection's opening to the server closing it
    while time.time() < t_start + 12:
        for i, s in enumerate(slow):
            if i in closed_at:
                continue
            try:
                s.setblocking(False)
                if s.recv(1) == b"":
                    closed_at[i] = time.time() - opened[i]
                    continue
            except BlockingIOError:
                pass
            except OSError:
                closed_at[i] = time.time() - opened[i]
                continue
            try:
                s.sendall(b"X")
            except OSError:
                closed_at[i] = time.time() - opened[i]
        time.sleep(1.0)
    held = len(slow)
    for s in slow:
        s.close()
    slow_failures = len(watch.failures) - failures_before
    closed = sorted(closed_at.values())
    when = f", {closed[0]:.1f}-{closed[-1]:.1f} s after opening" if closed else ""
    report.append(f"{held} slow connections trickling for 12 s: {len(closed)} closed by the server{when}; "
                  f"/health failed {slow_failures} of its polls meanwhile")
    expect("slow connections closed at the read deadline", len(closed) == held, (True,))
    # 6. The model file truncated under the running server: requests fail with a message, the server lives.
    with open(model, "r+b") as f:
        f.truncate(0)
    code, body = status(port, "POST", "/v1/completions", b'{"prompt":"The dog","max_tokens":4}')
    expect("model file truncated", code, (200, 400, 500, 503))
    report.append(f"model file truncated: request answered {code}, server alive: {server.alive()}")

    time.sleep(1.0)
    watch.stop = True
    watch.join()
    alive = server.alive()
    peak = server.rss_kb("VmHWM")
    if alive:
        server.proc.terminate()
        server.proc.wait(timeout=60)
    print("bitrun abuse check")
    for line in report:
        print("  " + line)
    print(f"requests {sent}, unexpected answers {len(unexpected)} {unexpected[:10]}")
    print(f"peak RSS {peak // 1024} MB; /health polls {watch.polls}, failed {len(watch.failures)} "
          f"{watch.failures[:5]}, slowest {watch.worst:.2f} s")
    print(f"server survived: {alive}; exit code after SIGTERM {server.proc.returncode}")
    shutil.rmtree(work, ignore_errors=True)
    ok = alive and not unexpected and not watch.failures and server.proc.returncode == 0
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
