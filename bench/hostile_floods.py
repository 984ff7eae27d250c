#!/usr/bin/env python3
"""RSS of notifd under floods from anonymous clients (loopback only).

Starts notifd (the example_hello plugin: POST /hello/echo takes a body) with
a small config on free loopback ports, and runs three floods, each bounded
in connections and time, reading VmRSS from /proc/PID/status before,
during (the peak of 20 ms samples) and after:

  a) 200 connections, each a head with Content-Length: 1048576 and
     1 MiB - 1 of body (never complete)
  b) 2 000 connections that send nothing, kept until the server closes
     them (http.idle_timeout) or the phase's time is up
  c) 2 000 connections with half a head (1 KiB of a header, no end),
     kept until the server answers 408 (http.request_timeout) or the
     phase's time is up

Usage:
  bench/hostile_floods.py [--notifd build/host/notifd] [--plugins build/plugins]
                          [--baseline] [--http-yaml '  key: value'] [--only abc] [--json]

--baseline leaves out the keys older builds do not know (idle_timeout and
the other limits), to measure a build from before them; --http-yaml adds
lines inside the config's http: map (indent them by two spaces).  Prints one line
per measurement and, with --json, the raw figures as JSON at the end.
"""
import argparse
import json
import os
import selectors
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_ws_bench import fd_limit, free_port, proc_stat  # noqa: E402

BODY = 1024 * 1024
PHASE_SECONDS = 40


class Daemon:
    def __init__(self, args, tmp):
        self.port, admin = free_port(), free_port()
        limits = "" if args.baseline else "  idle_timeout: 2s\n"
        cfg = (f"listen: {{address: 127.0.0.1, port: {self.port}}}\n"
               f"admin: {{address: 127.0.0.1, port: {admin}}}\n"
               f"data_dir: {tmp}/data\n"
               f"plugin_dirs: [{args.plugins}]\n"
               "logging: {level: error}\n"
               "http:\n  max_body: 2MiB\n  request_timeout: 5s\n" + limits +
               (args.http_yaml + "\n" if args.http_yaml else "") +
               "plugins:\n  - name: example_hello\n")
        path = os.path.join(tmp, "notifd.yaml")
        with open(path, "w") as f:
            f.write(cfg)
        self.log = open(os.path.join(tmp, "notifd.log"), "wb")
        self.proc = subprocess.Popen([args.notifd, "-c", path], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"notifd exited {self.proc.returncode}: see {tmp}/notifd.log")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise SystemExit("notifd did not become healthy")

    def rss(self):
        return proc_stat(self.proc.pid)[1] // 1024  # VmRSS, kB

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class Flood:
    """n non-blocking connections, each sending `data` (maybe nothing);
    records which ones the server answered or closed."""

    def __init__(self, port, n, data):
        self.sel = selectors.DefaultSelector()
        self.data = memoryview(data)
        self.conns = {}
        self.answered = {}  # first 12 bytes of what the server sent
        self.closed = set()
        for _ in range(n):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            self.conns[s] = 0
            self.sel.register(s, selectors.EVENT_READ | (selectors.EVENT_WRITE if data else 0))

    def pump(self, seconds, until=None, sample=None):
        end = time.time() + seconds
        while time.time() < end:
            if sample:
                sample()
            if until and until():
                return True
            for key, ev in self.sel.select(timeout=0.02):
                s = key.fileobj
                if ev & selectors.EVENT_READ:
                    try:
                        got = s.recv(65536)
                    except OSError:
                        got = b""
                    if got and s not in self.answered:
                        self.answered[s] = got[:12]
                    if not got:
                        self.closed.add(s)
                        self.sel.unregister(s)
                        continue
                if ev & selectors.EVENT_WRITE:
                    off = self.conns[s]
                    try:
                        off += s.send(self.data[off:off + 262144])
                    except BlockingIOError:
                        pass
                    except OSError:
                        off = len(self.data)
                    self.conns[s] = off
                    if off >= len(self.data):
                        self.sel.modify(s, selectors.EVENT_READ)
        return until() if until else False

    def all_sent(self):
        return all(off >= len(self.data) or s in self.closed for s, off in self.conns.items())

    def statuses(self):
        out = {}
        for head in self.answered.values():
            st = head[9:12].decode(errors="replace") if head.startswith(b"HTTP/1.1 ") else "?"
            out[st] = out.get(st, 0) + 1
        return out

    def close(self):
        for s in self.conns:
            try:
                self.sel.unregister(s)
            except (KeyError, ValueError):
                pass
            s.close()
        self.sel.close()


def phase(d, name, n, data, wait_for, seconds):
    before = d.rss()
    peak = [before]

    def sample():
        peak[0] = max(peak[0], d.rss())

    t0 = time.time()
    f = Flood(d.port, n, data)
    f.pump(seconds, until=f.all_sent, sample=sample)
    time.sleep(0.5)  # let the server read what the kernel still holds
    sample()
    held = d.rss()
    done = f.pump(seconds, until=lambda: wait_for(f), sample=sample)
    t_done = time.time() - t0
    after_server = d.rss()
    still_open = n - len(f.closed)
    f.close()
    time.sleep(1.0)
    after = d.rss()
    r = {"phase": name, "connections": n, "rss_before_kb": before, "rss_held_kb": held,
         "rss_peak_kb": peak[0], "rss_after_server_kb": after_server,
         "rss_after_close_kb": after, "closed_by_server": len(f.closed),
         "open_at_end": still_open, "answers": f.statuses(),
         "condition_met": bool(done), "seconds": round(t_done, 1)}
    print(f"{name}: RSS {before} kB before, {held} kB held, peak {peak[0]} kB, "
          f"{after_server} kB when the server was done ({'yes' if done else 'NOT met'} "
          f"after {t_done:.1f} s), {after} kB after the client closed; "
          f"server closed {len(f.closed)}/{n}, answers {f.statuses()}", flush=True)
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--notifd", default="build/host/notifd")
    ap.add_argument("--plugins", default="build/plugins")
    ap.add_argument("--baseline", action="store_true")
    ap.add_argument("--http-yaml", default="")
    ap.add_argument("--only", default="abc", help="phases to run (default abc)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if fd_limit() < 4200:  # notifd inherits it
        sys.exit("need 4200 file descriptors (ulimit -n)")
    half = b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 1024
    head = (b"POST /hello/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
            b"\r\nContent-Length: %d\r\n\r\n" % BODY)
    phases = {
        "a": ("a) 200 x 1 MiB - 1 partial bodies", 200, head + b" " * (BODY - 1), 15),
        "b": ("b) 2000 idle connections", 2000, b"", PHASE_SECONDS / 2),
        "c": ("c) 2000 half-sent heads", 2000, half, PHASE_SECONDS / 2),
    }
    results = []
    for key in args.only:
        name, n, data, seconds = phases[key]
        # A fresh daemon per flood: freed heap is kept by malloc for reuse,
        # so one flood's high-water mark would hide the next one's.
        with tempfile.TemporaryDirectory(prefix="nd-floods-") as tmp:
            d = Daemon(args, tmp)
            try:
                time.sleep(0.5)
                results.append(phase(d, name, n, data, lambda f, n=n: len(f.closed) == n,
                                     seconds))
            finally:
                d.stop()
    if args.json:
        print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
