#!/usr/bin/env python3
"""Websocket benchmarks for notifd (loopback only, bounded in count and time).

  bench/run_ws_bench.py [--build build] [--idle 10000] [--fanout-messages 200]

1. Idle memory: RSS delta of notifd / N after N idle websocket connections.
2. Fan-out: one publish to 1,000 subscribers of one key, repeated; and
   1,000 keys x 10 subscribers.  Deliveries per notifd CPU-second (utime +
   stime from /proc, i.e. per busy core) and per wall second.
Prints a JSON summary; record it in bench/README.md.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS:"))
    return cpu, rss


def metric(admin, name):
    body = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5).read().decode()
    total = 0.0
    for line in body.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait_for(pred, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--idle", type=int, default=10000)
    ap.add_argument("--fanout-messages", type=int, default=200)
    args = ap.parse_args()
    b = os.path.abspath(args.build)
    loadgen = os.path.join(b, "bench", "ws_loadgen")
    port, admin = free_port(), free_port()
    tmp = tempfile.mkdtemp(prefix="notifd-wsbench-")
    cfg = os.path.join(tmp, "bench.yaml")
    with open(cfg, "w") as f:
        f.write(f"""listen: {{address: 127.0.0.1, port: {port}}}
admin: {{address: 127.0.0.1, port: {admin}}}
data_dir: {tmp}/data
logging: {{level: warn}}
http: {{max_connections: 200000}}
websocket:
  max_connections: 200000
  max_connections_per_key: 20000
  max_queue_frames: 4096
  max_queue_bytes: 4194304
plugins:
  - name: ws_bench
    path: {b}/bench/ws_bench.so
""")
    import resource
    resource.setrlimit(resource.RLIMIT_NOFILE, (200000, 200000))
    nd = subprocess.Popen([os.path.join(b, "host", "notifd"), "-c", cfg],
                          stdout=open(os.path.join(tmp, "notifd.log"), "w"), stderr=subprocess.STDOUT)
    result = {"machine": os.uname().nodename, "cores": os.cpu_count()}
    try:
        wait_for(lambda: _ok(port), 10, "notifd")
        # 1. idle memory per connection
        _, rss0 = proc_stat(nd.pid)
        n = args.idle
        lg = subprocess.Popen([loadgen, "--port", str(port), "--path", "/bench/ws?k=idle{key}",
                               "--conns", str(n), "--keys", str(n), "--sources", "64", "--hold", "60"],
                              stdout=subprocess.PIPE, text=True)
        wait_for(lambda: metric(admin, "notifd_ws_connections") >= n, 60, f"{n} connections")
        time.sleep(1)
        _, rss1 = proc_stat(nd.pid)
        result["idle"] = {"connections": n, "rss_before": rss0, "rss_after": rss1,
                          "bytes_per_connection": round((rss1 - rss0) / n)}
        lg.terminate()
        lg.wait()
        wait_for(lambda: metric(admin, "notifd_ws_connections") == 0, 30, "idle close")

        # 2. fan-out
        for name, keys, subs in (("one_key_1000_subscribers", 1, 1000),
                                 ("1000_keys_10_subscribers", 1000, 10)):
            m = args.fanout_messages
            conns = keys * subs
            expect = conns * m
            lg = subprocess.Popen([loadgen, "--port", str(port), "--path", "/bench/ws?k=f{key}",
                                   "--conns", str(conns), "--keys", str(keys), "--sources", "32",
                                   "--hold", "120", "--expect", str(expect)],
                                  stdout=subprocess.PIPE, text=True)
            wait_for(lambda: metric(admin, "notifd_ws_connections") >= conns, 60, "subscribers")
            cpu0, _ = proc_stat(nd.pid)
            t0 = time.time()
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/bench/publish?keys={keys}&prefix=f&count={m}&size=64",
                data=b"", method="POST")
            pub = json.loads(urllib.request.urlopen(req, timeout=120).read())
            out, _ = lg.communicate(timeout=150)
            t1 = time.time()
            cpu1, _ = proc_stat(nd.pid)
            done = [json.loads(l) for l in out.splitlines() if '"done"' in l][-1]
            result[name] = {
                "publishes": pub["published"], "delivered_reported": pub["delivered"],
                "failed": pub["failed"], "frames_received": done["frames"],
                "notifd_cpu_seconds": round(cpu1 - cpu0, 3), "wall_seconds": round(t1 - t0, 3),
                "deliveries_per_cpu_second": round(done["frames"] / max(cpu1 - cpu0, 1e-9)),
                "deliveries_per_wall_second": round(done["frames"] / max(t1 - t0, 1e-9)),
            }
            wait_for(lambda: metric(admin, "notifd_ws_connections") == 0, 30, "fan-out close")
    finally:
        nd.terminate()
        nd.wait(timeout=20)
    print(json.dumps(result, indent=2))


def _ok(port):
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).status == 200
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main())
