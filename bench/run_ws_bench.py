#!/usr/bin/env python3
"""Websocket benchmarks for notifd (loopback only, bounded in count and time).

  bench/run_ws_bench.py [--build build] [--idle 10000] [--fanout-messages 200]
                        [--roles all|none]

RLIMIT_NOFILE is raised as far as the system allows; when one process
cannot hold --idle descriptors (a container without CAP_SYS_RESOURCE keeps
the hard limit, e.g. 20000), the idle connections are spread over several
notifd processes, each with its own ws_loadgen.

--roles all (default) loads the five roles of config/single-node.yaml
(chat_ws, notifications_ws, chat_persistence, chat_change_handler, email;
embedded backends, no traffic on them) next to the ws_bench plugin, and the
idle connections are real notifications_ws subscriptions
(/notifications/subscribe?user_id=...); --roles none loads ws_bench alone
and idles on its /bench/ws channel.

1. Idle memory: RSS delta of notifd / N after N idle websocket connections.
2. Fan-out: one publish to 1,000 subscribers of one key, repeated; and
   1,000 keys x 10 subscribers.  Deliveries per notifd CPU-second (utime +
   stime from /proc, i.e. per busy core) and per wall second.
Prints a JSON summary; record it in bench/README.md.
"""
import argparse
import json
import os
import shutil
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


def fd_limit():
    """Raises RLIMIT_NOFILE as far as allowed; returns the soft limit."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for want in (200000, hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return want
        except (ValueError, OSError):
            continue
    return soft


def bench_yaml(tmp, port, admin, b):
    """The head of a benchmark config (shared with run_peer_bench.py); the
    caller appends the plugins list."""
    return f"""listen: {{address: 127.0.0.1, port: {port}}}
admin: {{address: 127.0.0.1, port: {admin}}}
data_dir: {tmp}/data
logging: {{level: warn}}
# The websocket engine alone: subscriptions without tokens.
auth: {{mode: none}}
# 40 000 sockets from 16 loopback addresses: no per-address cap.
http: {{max_connections: 200000, max_connections_per_ip: 0}}
websocket:
  max_connections: 200000
  max_connections_per_key: 20000
  max_queue_frames: 4096
  max_queue_bytes: 4194304
plugin_dirs: [{b}/plugins]
plugins:
"""


def write_config(tmp, port, admin, b, roles):
    cfg = os.path.join(tmp, "bench.yaml")
    with open(cfg, "w") as f:
        f.write(bench_yaml(tmp, port, admin, b) + f"""  - name: ws_bench
    path: {b}/bench/ws_bench.so
""")
        if roles == "all":
            f.write(f"""  - name: chat_ws
  - name: notifications_ws
  - name: chat_persistence
  - name: chat_change_handler
  - name: email
    config:
      smtp_url: smtp://127.0.0.1:9
      templates_dir: {ROOT}/config/templates
      chat_throttle: 10m
""")
    return cfg


TMPDIRS = []


def start_notifd(b, roles):
    port, admin = free_port(), free_port()
    tmp = tempfile.mkdtemp(prefix="notifd-wsbench-")
    TMPDIRS.append(tmp)
    cfg = write_config(tmp, port, admin, b, roles)
    nd = subprocess.Popen([os.path.join(b, "host", "notifd"), "-c", cfg],
                          stdout=open(os.path.join(tmp, "notifd.log"), "w"), stderr=subprocess.STDOUT)
    wait_for(lambda: _ok(port), 20, "notifd")
    return nd, port, admin


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--idle", type=int, default=10000)
    ap.add_argument("--fanout-messages", type=int, default=200)
    ap.add_argument("--roles", choices=("all", "none"), default="all")
    args = ap.parse_args()
    b = os.path.abspath(args.build)
    loadgen = os.path.join(b, "bench", "ws_loadgen")
    limit = fd_limit()
    # One process (notifd or ws_loadgen) holds at most `limit` descriptors:
    # more idle connections than fit are spread over several notifd
    # processes, each with its own loadgen.
    per_proc = max(1000, min(args.idle, limit - 1000))
    nprocs = -(-args.idle // per_proc)
    result = {"machine": os.uname().nodename, "cores": os.cpu_count(), "roles": args.roles,
              "nofile_limit": limit}
    procs = []
    try:
        for _ in range(nprocs):
            procs.append(start_notifd(b, args.roles))
        nd, port, admin = procs[0]
        # 1. idle memory per connection
        idle_path = ("/notifications/subscribe?user_id=idle{key}" if args.roles == "all"
                     else "/bench/ws?k=idle{key}")
        result["idle_path"] = idle_path
        rss0 = [proc_stat(p.pid)[1] for p, _, _ in procs]
        shares = [per_proc] * (nprocs - 1) + [args.idle - per_proc * (nprocs - 1)]
        lgs = []
        # One loadgen at a time: all of them at once on two cores overflow
        # the listen backlogs and the retried SYNs take seconds.
        hold = 60 * nprocs + 60
        for (p, pt, adm), share in zip(procs, shares):
            lgs.append(subprocess.Popen([loadgen, "--port", str(pt), "--path", idle_path,
                                         "--conns", str(share), "--keys", str(share),
                                         "--sources", "64", "--hold", str(min(hold, 600))],
                                        stdout=subprocess.PIPE, text=True))
            wait_for(lambda: metric(adm, "notifd_ws_connections") >= share, 120,
                     f"{share} connections")
        time.sleep(1)
        rss1 = [proc_stat(p.pid)[1] for p, _, _ in procs]
        total = sum(r1 - r0 for r0, r1 in zip(rss0, rss1))
        result["idle"] = {"connections": args.idle, "notifd_processes": nprocs,
                          "connections_per_process": shares,
                          "rss_before": rss0, "rss_after": rss1,
                          "bytes_per_connection": round(total / args.idle)}
        for lg in lgs:
            lg.terminate()
            lg.wait()
        for p, _, adm in procs:
            wait_for(lambda: metric(adm, "notifd_ws_connections") == 0, 60, "idle close")

        # 2. fan-out (first process only)
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
        for p, _, _ in procs:
            p.terminate()
        for p, _, _ in procs:
            p.wait(timeout=30)
        for d in TMPDIRS:
            shutil.rmtree(d, ignore_errors=True)
    print(json.dumps(result, indent=2))


def _ok(port):
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).status == 200
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main())
