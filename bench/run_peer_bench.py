#!/usr/bin/env python3
"""notifd beside its peers, same client, one run (issue 14).

  bench/run_peer_bench.py [--build build] [--rounds 3] [--quick]
                          [--notifd NAME[:VAR=VALUE,...]]... [--no-centrifugo]
                          [--cache DIR] [--json FILE]

Builds Centrifugo v6 with `go install` (Go module proxy) into a cache dir
outside the repository (--cache, default ~/.cache/notifd-peer-bench; a
binary already there is reused), then runs, per round and one server after
the other on the same machine in the same minutes:

  notifd  = host/notifd with the chat_ws role alone (auth none, no stream id
            check): sockets on /chat/subscribe-websocket?stream_id=k<key>,
            publishes = POST /chat/forward-to-websocket with a chat message
  Centrifugo v6 = memory engine, HMAC connection tokens, a client subscribe
            per socket, publishes = POST /api/publish (X-API-Key), data = the
            same chat message

with one client, build/bench/ws_loadgen: it opens the sockets, waits until
every one is subscribed, then publishes over 4 keep-alive HTTP connections
(closed loop) and counts the messages the sockets receive; server CPU is
utime+stime of the server process from /proc over the publish window.

Scenarios (those of run_ws_bench.py): 1 key x 1 000 subscribers and
1 000 keys x 10 subscribers, 64-byte content.  Prints per-round figures,
medians and ratios (peer CPU per publish / notifd CPU per publish).

--notifd NAME[:VAR=VALUE,...] adds a notifd variant (environment for the
server, e.g. `--notifd bev:NOTIFD_WS_WRITE=bev` for an A/B of the
websocket write path; `websocket.KEY=VALUE` sets a config key instead,
e.g. `--notifd d1:websocket.write_delay=1ms`).  Default: one variant,
"notifd".

If Go, the module or the build is unavailable, Centrifugo is reported as
SKIPPED with the reason and notifd still runs.  Bounded: every wait has a
timeout; ws_loadgen stops by itself (--hold).  Not part of the test suite.
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from run_ws_bench import bench_yaml  # noqa: E402  (the same notifd config head)
CENTRIFUGO_MODULE = "github.com/centrifugal/centrifugo/v6"
CENTRIFUGO_VERSION = "v6.9.1"
CONTENT = "x" * 64


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout, what, proc):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


def hs256(secret, claims):
    def b64(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


def chat_message_template():
    # {key} and {seq} are substituted by ws_loadgen.
    return ('{"message_id":"m{seq}","content":"' + CONTENT + '",'
            '"created_at":"0001-01-01T00:00:00Z","stream_id":"k{key}",'
            '"sender_id":"a","receiver_id":"b"}')


# ---- Centrifugo -------------------------------------------------------------

def build_centrifugo(cache, log):
    """Path of the centrifugo binary, or raises RuntimeError(reason)."""
    binary = os.path.join(cache, "bin", "centrifugo")
    if os.path.exists(binary):
        return binary
    go = shutil.which("go")
    if not go:
        raise RuntimeError("go not found on PATH")
    os.makedirs(os.path.join(cache, "bin"), exist_ok=True)
    env = dict(os.environ, GOBIN=os.path.join(cache, "bin"))
    print(f"building {CENTRIFUGO_MODULE}@{CENTRIFUGO_VERSION} (go install; minutes)...",
          file=log, flush=True)
    try:
        p = subprocess.run([go, "install", f"{CENTRIFUGO_MODULE}@{CENTRIFUGO_VERSION}"],
                           env=env, capture_output=True, text=True, timeout=1800)
    except subprocess.TimeoutExpired:
        raise RuntimeError("go install timed out after 30 minutes")
    if p.returncode != 0 or not os.path.exists(binary):
        tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
        raise RuntimeError("go install failed: " + " | ".join(tail))
    return binary


class Centrifugo:
    name = "centrifugo"
    secret = "bench-hmac-secret"
    api_key = "bench-api-key"

    def __init__(self, binary):
        self.binary = binary

    def start(self, tmp):
        self.port = free_port()
        cfg = {
            "http_server": {"address": "127.0.0.1", "port": str(self.port)},
            "log": {"level": "error"},
            "client": {"token": {"hmac_secret_key": self.secret},
                       "allowed_origins": ["*"]},
            "http_api": {"key": self.api_key},
            "channel": {"without_namespace": {"allow_subscribe_for_client": True}},
        }
        path = os.path.join(tmp, "centrifugo.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        self.log = open(os.path.join(tmp, "centrifugo.log"), "w")
        self.proc = subprocess.Popen([self.binary, "--config", path], cwd=tmp,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        wait_http(f"http://127.0.0.1:{self.port}/health", 30, "centrifugo", self.proc)

    def loadgen_args(self):
        token = hs256(self.secret, {"sub": "bench", "exp": int(time.time()) + 86400})
        hello = ('{"id":1,"connect":{"token":"' + token + '","name":"bench"}}\n'
                 '{"id":2,"subscribe":{"channel":"k{key}"}}')
        body = '{"channel":"k{key}","data":' + chat_message_template() + '}'
        return ["--path", "/connection/websocket", "--hello", hello,
                "--ready-marker", '"id":2', "--count-marker", '"pub":', "--pong-empty-json",
                "--publish", "/api/publish", "--header", f"X-API-Key: {self.api_key}",
                "--body", body]


# ---- notifd -------------------------------------------------------------------

class Notifd:
    def __init__(self, build, name, env):
        self.build = build
        self.name = name
        # websocket.KEY=VALUE entries are config keys, the rest environment.
        self.ws_keys = {k[len("websocket."):]: v for k, v in env.items()
                        if k.startswith("websocket.")}
        self.env = {k: v for k, v in env.items() if not k.startswith("websocket.")}

    def start(self, tmp):
        self.port, admin = free_port(), free_port()
        cfg = os.path.join(tmp, "notifd.yaml")
        with open(cfg, "w") as f:
            head = bench_yaml(tmp, self.port, admin, self.build)
            extra = "".join(f"  {k}: {v}\n" for k, v in self.ws_keys.items())
            f.write(head.replace("websocket:\n", "websocket:\n" + extra, 1) + """  - name: chat_ws
    config: {verify_stream_id: false}
""")
        self.log = open(os.path.join(tmp, "notifd.log"), "w")
        self.proc = subprocess.Popen([os.path.join(self.build, "host", "notifd"), "-c", cfg],
                                     env=dict(os.environ, **self.env),
                                     stdout=self.log, stderr=subprocess.STDOUT)
        wait_http(f"http://127.0.0.1:{self.port}/healthz", 30, "notifd", self.proc)

    def loadgen_args(self):
        return ["--path", "/chat/subscribe-websocket?stream_id=k{key}&sender_id=a&receiver_id=b",
                "--publish", "/chat/forward-to-websocket?stream_id=k{key}",
                "--body", chat_message_template()]


def stop(server):
    p = server.proc
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    server.log.close()


def run_scenario(loadgen, server, keys, subs, messages, http_conns):
    conns = keys * subs
    cmd = [loadgen, "--port", str(server.port), "--conns", str(conns), "--keys", str(keys),
           "--sources", "16", "--hold", "300", "--messages", str(messages),
           "--http-conns", str(http_conns), "--server-pid", str(server.proc.pid)]
    cmd += server.loadgen_args()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=330)
    lines = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
    done = next((l for l in lines if l.get("event") == "done"), {})
    pub = next((l for l in lines if l.get("event") == "published"), None)
    if not pub:
        raise RuntimeError(f"{server.name}: no result (rc {p.returncode}): {p.stderr[-300:]}")
    pub["upgraded"] = done.get("upgraded")
    pub["complete"] = pub["received"] >= pub["expected"] and pub["http_errors"] == 0
    return pub


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 round, few messages")
    ap.add_argument("--notifd", action="append", default=[],
                    help="NAME[:VAR=VALUE,...] a notifd variant (repeatable)")
    ap.add_argument("--no-centrifugo", action="store_true")
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/notifd-peer-bench"))
    ap.add_argument("--http-conns", type=int, default=4)
    ap.add_argument("--json", help="write every result to this file")
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    loadgen = os.path.join(build, "bench", "ws_loadgen")
    if not os.path.exists(loadgen):
        sys.exit(f"{loadgen} missing: build first (ninja -C {args.build})")
    rounds = 1 if args.quick else args.rounds
    # messages per key: 1 key x 1000 gets more publishes than 1000 keys x 10.
    scenarios = [("1 key x 1000 subscribers", 1, 1000, 20 if args.quick else 400),
                 ("1000 keys x 10 subscribers", 1000, 10, 2 if args.quick else 20)]

    servers = []
    for spec in args.notifd or ["notifd"]:
        name, _, envs = spec.partition(":")
        env = dict(kv.split("=", 1) for kv in envs.split(",") if kv)
        servers.append(Notifd(build, name, env))
    skipped = None
    if not args.no_centrifugo:
        try:
            servers.append(Centrifugo(build_centrifugo(args.cache, sys.stderr)))
        except RuntimeError as e:
            skipped = str(e)
            print(f"centrifugo: SKIPPED ({skipped})", flush=True)

    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass

    results = {s.name: {sc[0]: [] for sc in scenarios} for s in servers}
    for rnd in range(rounds):
        for sc_name, keys, subs, messages in scenarios:
            for server in servers:  # interleaved: same minutes for every server
                for attempt in (1, 2):  # one retry: e.g. a connect lost in a full backlog
                    tmp = tempfile.mkdtemp(prefix="notifd-peer-")
                    try:
                        server.start(tmp)
                        r = run_scenario(loadgen, server, keys, subs, messages,
                                         args.http_conns)
                    finally:
                        stop(server)
                        shutil.rmtree(tmp, ignore_errors=True)
                    if r["complete"]:
                        break
                    print(f"round {rnd + 1} {sc_name} {server.name}: incomplete "
                          f"({r['received']}/{r['expected']} messages, upgraded "
                          f"{r['upgraded']}), attempt {attempt}", flush=True)
                results[server.name][sc_name].append(r)
                print(f"round {rnd + 1} {sc_name:28s} {server.name:12s} "
                      f"{r['server_us_per_publish']:9.1f} us/publish  "
                      f"{r['received']}/{r['expected']} messages  {r['seconds']:.2f} s  "
                      f"{r['received'] / max(r['seconds'], 1e-9):9.0f} deliveries/s  "
                      f"http errors {r['http_errors']}", flush=True)

    print()
    base = servers[0].name
    print(f"medians of {rounds} round(s), complete runs only: server CPU per publish (us); "
          f"ratio = other / {base}")
    summary = {}
    for sc_name, *_ in scenarios:
        row = {}
        for s in servers:
            vals = [r["server_us_per_publish"] for r in results[s.name][sc_name] if r["complete"]]
            row[s.name] = statistics.median(vals) if vals else float("nan")
        summary[sc_name] = row
        cells = "  ".join(f"{n} {v:.1f} ({v / row[base]:.2f}x)" for n, v in row.items())
        print(f"  {sc_name:28s} {cells}")
    print(f"medians, deliveries per wall-second (ratio = other / {base})")
    for sc_name, *_ in scenarios:
        row = {}
        for s in servers:
            vals = [r["received"] / max(r["seconds"], 1e-9) for r in results[s.name][sc_name]
                    if r["complete"]]
            row[s.name] = statistics.median(vals) if vals else float("nan")
        cells = "  ".join(f"{n} {v:.0f} ({v / row[base]:.2f}x)" for n, v in row.items())
        print(f"  {sc_name:28s} {cells}")
    if skipped:
        print(f"centrifugo: SKIPPED ({skipped})")
    incomplete = [(n, sc) for n, d in results.items() for sc, rs in d.items()
                  if not all(r["complete"] for r in rs)]
    if incomplete:
        print(f"INCOMPLETE runs (messages missing or HTTP errors): {incomplete}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": os.uname().nodename, "cores": os.cpu_count(),
                       "results": results, "medians_us_per_publish": summary,
                       "centrifugo_skipped": skipped}, f, indent=2)
    return 1 if incomplete else 0


if __name__ == "__main__":
    sys.exit(main())
