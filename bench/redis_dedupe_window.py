#!/usr/bin/python3
"""How many records does the change handler deliver twice when Redis - its
dedupe store - restarts, with and without the append-only file?

One notifd runs chat_persistence, chat_change_handler, chat_ws and
notifications_ws on the embedded bus with `backends.redis` as the dedupe
store (the handler's dedupe code and Redis are what the distributed stack
runs; Kafka plays no part in what Redis forgets).  Per scenario:

 1. a real redis-server (tests/services/redis.sh), without persistence
    ("none", what the stack ran before) or with config/distributed/redis.conf
    ("aof*": appendonly, appendfsync everysec); the kv policy is fail-open
    (shipped) except in "aof-fail-closed";
 2. N messages are POSTed at RATE/s; halfway through Redis is killed (kill -9,
    or SIGTERM for "aof-graceful") and started again from the same directory
    after DOWN seconds; the handler keeps delivering (fail-open: records
    handled until it has reconnected are delivered without a dedupe key;
    fail-closed: they are retried until Redis answers);
 3. once every record is handled, notifd stops, the handler group's cursors
    in bus.db go back to the beginning, and notifd starts again: every
    record is redelivered, as after a Kafka rebalance or a consumer restart
    that had not committed.  A redelivered record whose key Redis still has
    is dropped; one whose key is gone is forwarded again = a duplicate.

Prints one line per scenario and a JSON summary.  Bounded: about
N/RATE + 15 s per scenario.  Usage:

  NOTIFD_BUILD_ROOT=build bench/redis_dedupe_window.py [--n 3000] [--rate 500] [--down 0.5]
"""
import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BUILD = os.path.abspath(os.environ.get("NOTIFD_BUILD_ROOT", os.path.join(SRC, "build")))
os.environ["NOTIFD_BUILD_ROOT"] = BUILD  # for conftest
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
from conftest import NOTIFD, free_port, http, metric, wait_until  # noqa: E402
REDIS_SH = os.path.join(SRC, "tests", "services", "redis.sh")
REDIS_CONF = os.path.join(SRC, "config", "distributed", "redis.conf")
GROUP = "chat-persistence-change-consumer"
# stream_id = ComputeStreamID(sender, receiver) (the Go contract, 2.6)
MSG = {"stream_id": "3216fea9031bf845", "sender_id": "sender-a", "receiver_id": "receiver-b"}


class Redis:
    def __init__(self, d, conf):
        self.dir, self.conf, self.port = d, conf, free_port()

    def start(self):
        args = [REDIS_SH, "start", self.dir, str(self.port)] + ([self.conf] if self.conf else [])
        r = subprocess.run(args, capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise SystemExit(f"redis: {r.stderr.strip()}")

    def pid(self):
        with open(os.path.join(self.dir, "redis.pid")) as f:
            return int(f.read())

    def kill(self, sig):
        pid = self.pid()
        os.kill(pid, sig)
        for _ in range(200):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.025)
        os.kill(pid, signal.SIGKILL)

    def stop(self):
        subprocess.run([REDIS_SH, "stop", self.dir], capture_output=True, timeout=30)


class Notifd:
    def __init__(self, d, redis_port, policy="fail-open"):
        self.dir, self.port, self.admin = d, free_port(), free_port()
        self.data = os.path.join(d, "data")
        self.cfg = os.path.join(d, "notifd.yaml")
        with open(self.cfg, "w") as f:
            f.write(f"""listen: {{address: 127.0.0.1, port: {self.port}}}
admin: {{address: 127.0.0.1, port: {self.admin}}}
data_dir: {self.data}
plugin_dirs: [{os.path.join(BUILD, "plugins")}]
logging: {{level: warn}}
auth: {{mode: none}}
backends:
  redis: {{address: 127.0.0.1:{redis_port}, policy: {policy}}}
plugins:
  - name: chat_ws
    config: {{presence_topic: ""}}
  - name: notifications_ws
  - name: chat_persistence
  - name: chat_change_handler
    config:
      # as config/distributed/chat_change_handler.yaml: about 25 s
      retry: {{max_attempts: 10, initial_interval: 200ms, max_interval: 5s}}
""")
        self.proc = None

    def start(self):
        self.log = open(os.path.join(self.dir, "notifd.log"), "ab")
        self.proc = subprocess.Popen([NOTIFD, "-c", self.cfg], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        wait_until(self._up, 15, "notifd")

    def _up(self):
        assert self.proc.poll() is None, "notifd exited"
        try:
            return http("GET", f"http://127.0.0.1:{self.port}/healthz", timeout=1)[0] == 200
        except OSError:
            return False

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=20)
        self.log.close()

    def metrics(self):
        return http("GET", f"http://127.0.0.1:{self.admin}/metrics")[1].decode()

    def m(self, name, **labels):
        return metric(self, name, **labels)


def scenario(mode, n, rate, down):
    with tempfile.TemporaryDirectory(prefix=f"dedupe-{mode}-") as d:
        redis = Redis(os.path.join(d, "redis"), REDIS_CONF if mode != "none" else None)
        redis.start()
        nd = Notifd(d, redis.port, "fail-closed" if mode.endswith("fail-closed") else "fail-open")
        nd.start()
        try:
            killed = threading.Event()

            def fault():
                time.sleep(n / rate / 2)
                redis.kill(signal.SIGTERM if mode == "aof-graceful" else signal.SIGKILL)
                time.sleep(down)
                redis.start()
                killed.set()

            threading.Thread(target=fault, daemon=True).start()
            t0 = time.monotonic()
            failed = 0
            for i in range(n):
                delay = t0 + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                st, _, _ = http("POST", f"http://127.0.0.1:{nd.port}/chat/persist",
                             dict(MSG, content=f"m{i}"))
                failed += st != 201
            killed.wait(30)
            # The outage is over once notifd has reconnected (the keys it
            # owes Redis are written then; they live in memory until then).
            wait_until(lambda: json.loads(http(
                "GET", f"http://127.0.0.1:{nd.admin}/readyz")[1])["checks"].get("kv"), 30,
                "kv ready")
            time.sleep(0.3)
            ok = "chat_persistence_change_consumer_success_event_total"
            try:
                wait_until(lambda: nd.m(ok, event_type="c") >= n - failed, 90, "first delivery")
            except AssertionError:
                print(open(os.path.join(d, "notifd.log")).read()[-3000:], file=sys.stderr)
                print({k: nd.m(k) for k in (ok, "notifd_kv_errors_total",
                                            "notifd_bus_dead_lettered_total",
                                            "notifd_bus_retried_total")}, file=sys.stderr)
                raise
            first_done = time.monotonic() - t0
            failopen = nd.m("notifd_kv_failopen_total")
            nd.stop()
            db = sqlite3.connect(os.path.join(nd.data, "bus.db"))
            db.execute("UPDATE cursors SET next_seq = 0 WHERE grp = ?", (GROUP,))
            db.commit()
            db.close()
            nd.start()
            dropped = "chat_persistence_change_consumer_dropped_event_total"

            def replayed():
                return (nd.m(ok, event_type="c") +
                        nd.m(dropped, dropped_reason="dropped_from_event_store_validation"))

            wait_until(lambda: replayed() >= n - failed, 60, "the replay")
            time.sleep(0.5)
            dup = int(nd.m(ok, event_type="c"))
            if os.environ.get("BENCH_VERBOSE"):
                with open(os.path.join(d, "notifd.log")) as f:
                    print("".join(ln for ln in f if "comp=kv" in ln)[-4000:], file=sys.stderr)
            kept = int(nd.m(dropped, dropped_reason="dropped_from_event_store_validation"))
            nd.stop()
        finally:
            if nd.proc and nd.proc.poll() is None:
                nd.proc.kill()
            redis.stop()
    res = {"mode": mode, "messages": n - failed, "rate": rate, "redis_down_s": down,
           "failopen_ops": int(failopen), "replayed_duplicates": dup, "replayed_dropped": kept,
           "duplicate_window_s": round(dup / rate, 2),
           "first_delivery_s": round(first_done, 2)}
    print(f"{mode:13s} {n - failed} msgs at {rate}/s, Redis down {down}s: {dup} delivered "
          f"twice on replay ({dup / rate:.2f} s of traffic), {kept} deduped; "
          f"{int(failopen)} kv ops failed open; all delivered once {first_done:.1f} s after "
          f"the first POST", flush=True)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--rate", type=int, default=500)
    ap.add_argument("--down", type=float, default=0.5, help="seconds Redis stays down")
    ap.add_argument("--modes", default="none,aof,aof-graceful,aof-fail-closed")
    a = ap.parse_args()
    if not os.path.exists(NOTIFD):
        raise SystemExit(f"{NOTIFD} not built")
    out = [scenario(m, a.n, a.rate, a.down) for m in a.modes.split(",")]
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
