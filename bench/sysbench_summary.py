#!/usr/bin/python3
"""Summaries for bench/run_system_bench.sh (reads chat_bench / run_ws_bench JSON).

  sysbench_summary.py --line FILE NAME      one line for a chat_bench run
  sysbench_summary.py --sustained RATE FILE exit 0 if the run sustained RATE
  sysbench_summary.py --report DIR          tables for every run in DIR

A rate is sustained when every message was accepted (201) and delivered to
every socket, the generator sent and the sockets received at least 97% of
the offered rate over the measured window, and the chat p99 stayed under
250 ms (no growing backlog).  Late sends (more than 2 ms behind schedule:
the generator itself was short of CPU) are reported, not judged.
"""
import glob
import json
import os
import re
import statistics
import sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def line(d, name):
    if not d:
        return f"{name}: no result"
    c = d["latency_ms"]["chat_ws"]
    n = d["latency_ms"]["notifications_ws"]
    p = d["latency_ms"]["post_answer"]
    cpu = (f" server {d['server_cpu_us_per_message']:.0f} us/msg"
           if "server_cpu_us_per_message" in d else "")
    return (f"{name}: ok={d['ok']} sent={d['sent']} late={d['late_sends']} "
            f"send={d['send_rate']}/s delivered={d['complete_rate']}/s | chat p50={c['p50']:.2f} "
            f"p99={c['p99']:.2f} p99.9={c['p999']:.2f} max={c['max']:.2f} ms | notif "
            f"p99={n['p99']:.2f} | POST p50={p['p50']:.2f} p99={p['p99']:.2f} ms |{cpu} "
            f"loadgen {d['loadgen_cpu_seconds']:.2f}s cpu")


def sustained(d, rate):
    if not d or not d["ok"]:
        return False
    return (d["send_rate"] >= 0.97 * rate and d["complete_rate"] >= 0.97 * rate
            and d["latency_ms"]["chat_ws"]["p99"] < 250)


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def fmt(v, nd=2):
    return "-" if v is None else f"{v:.{nd}f}"


def report(dirname):
    out = []
    mt = os.path.join(dirname, "machine.txt")
    if os.path.exists(mt):
        out.append("## machine\n" + open(mt).read())

    def runs(pattern):
        res = []
        for path in sorted(glob.glob(os.path.join(dirname, pattern))):
            d = load(path)
            if d and "latency_ms" in d:
                res.append((os.path.basename(path)[:-5], d))
        return res

    def latency_table(title, rs):
        if not rs:
            return
        out.append(f"## {title}")
        out.append("| run | ok | msgs | chat p50 | chat p99 | chat p99.9 | chat max | notif p99 | "
                   "POST p99 | server us/msg |")
        out.append("|---|---|---|---|---|---|---|---|---|---|")
        for name, d in rs:
            c, n, p = (d["latency_ms"][k] for k in ("chat_ws", "notifications_ws", "post_answer"))
            out.append(f"| {name} | {d['ok']} | {d['sent']} | {c['p50']:.2f} | {c['p99']:.2f} | "
                       f"{c['p999']:.2f} | {c['max']:.2f} | {n['p99']:.2f} | {p['p99']:.2f} | "
                       f"{d.get('server_cpu_us_per_message', 0):.0f} |")
        out.append("")

    latency_table("latency, single node, 1000 msg/s (ms)", runs("latency-single*.json"))
    latency_table("latency, distributed, 1000 msg/s (ms)", runs("latency-distributed*.json"))

    kinds = {"all": "five roles", "all16": "five roles, bus.partitions 16",
             "chat": "chat path, no email role"}
    for kind in ("all", "all16", "chat"):
        rs = runs(f"max-{kind}-r*.json")
        if rs:
            out.append(f"## closed-loop maximum, {kind} ({kinds[kind]})")
            out.append("| run | ok | msgs | delivered msg/s | chat p50 ms | chat p99 ms | server us/msg | loadgen cpu s |")
            out.append("|---|---|---|---|---|---|---|---|")
            for name, d in rs:
                c = d["latency_ms"]["chat_ws"]
                out.append(f"| {name} | {d['ok']} | {d['sent']} | {d['complete_rate']} | "
                           f"{c['p50']:.1f} | {c['p99']:.1f} | "
                           f"{d.get('server_cpu_us_per_message', 0):.0f} | "
                           f"{d['loadgen_cpu_seconds']:.2f} |")
            out.append("")
        ladder = []
        for path in glob.glob(os.path.join(dirname, f"ingest-{kind}-rate*-t*.json")):
            m = re.search(r"rate(\d+)-t(\d+)", path)
            ladder.append((int(m.group(1)), int(m.group(2)), load(path)))
        if ladder:
            ladder.sort(key=lambda x: (x[0], x[1]))
            out.append(f"## open-loop ladder, {kind}")
            out.append("| offered msg/s | try | sustained | delivered msg/s | late sends | chat p50 ms | chat p99 ms | server us/msg |")
            out.append("|---|---|---|---|---|---|---|---|")
            best = 0
            for rate, t, d in ladder:
                ok = sustained(d, rate)
                if ok:
                    best = max(best, rate)
                if not d:
                    out.append(f"| {rate} | {t} | no result | | | | | |")
                    continue
                c = d["latency_ms"]["chat_ws"]
                out.append(f"| {rate} | {t} | {ok} | {d['complete_rate']} | {d['late_sends']} | "
                           f"{c['p50']:.1f} | {c['p99']:.1f} | "
                           f"{d.get('server_cpu_us_per_message', 0):.0f} |")
            out.append(f"\nhighest sustained rate ({kind}): {best} msg/s\n")

    for name in ("ws-all", "ws-none"):
        d = load(os.path.join(dirname, name + ".json"))
        if not d:
            continue
        out.append(f"## websockets ({'all roles loaded' if name == 'ws-all' else 'ws_bench plugin alone'})")
        i = d["idle"]
        out.append(f"idle: {i['connections']} connections on {i['notifd_processes']} notifd "
                   f"process(es) {i['connections_per_process']} via {d['idle_path']}: "
                   f"{i['bytes_per_connection']} bytes/connection (RSS {i['rss_before']} -> "
                   f"{i['rss_after']})")
        for k in ("one_key_1000_subscribers", "1000_keys_10_subscribers"):
            f = d[k]
            out.append(f"fan-out {k}: {f['frames_received']} frames, "
                       f"{f['deliveries_per_cpu_second']} deliveries/CPU-s, "
                       f"{f['deliveries_per_wall_second']} deliveries/wall-s "
                       f"(notifd {f['notifd_cpu_seconds']} CPU-s in {f['wall_seconds']} s)")
        out.append("")

    cmp = {}
    for name, d in runs("compare-*.json"):
        m = re.match(r"compare-(rev|cur)-(.*)-r\d+", name)
        if m:
            cmp.setdefault(m.group(2), {}).setdefault(m.group(1), []).append(d)
    if cmp:
        out.append("## compare (median of rounds; ratio = this tree / REV)")
        out.append("| run | metric | REV | this tree | ratio |")
        out.append("|---|---|---|---|---|")
        for what, v in sorted(cmp.items()):
            metrics = ([("chat p50 ms", lambda d: d["latency_ms"]["chat_ws"]["p50"]),
                        ("chat p99 ms", lambda d: d["latency_ms"]["chat_ws"]["p99"]),
                        ("chat p99.9 ms", lambda d: d["latency_ms"]["chat_ws"]["p999"]),
                        ("POST p99 ms", lambda d: d["latency_ms"]["post_answer"]["p99"]),
                        ("server us/msg", lambda d: d.get("server_cpu_us_per_message"))]
                       if what.endswith("latency") else
                       [("delivered msg/s", lambda d: d["complete_rate"]),
                        ("all delivered", lambda d: 1 if d["ok"] else 0),
                        ("chat p50 ms", lambda d: d["latency_ms"]["chat_ws"]["p50"]),
                        ("server us/msg", lambda d: d.get("server_cpu_us_per_message"))])
            for label, fn in metrics:
                a = med([fn(d) for d in v.get("rev", [])])
                b = med([fn(d) for d in v.get("cur", [])])
                ratio = b / a if a and b is not None else None
                out.append(f"| {what} | {label} | {fmt(a)} | {fmt(b)} | {fmt(ratio)} |")
        out.append("")
    print("\n".join(out))


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "--line":
        print(line(load(sys.argv[2]), sys.argv[3]))
        return 0
    if len(sys.argv) == 4 and sys.argv[1] == "--sustained":
        return 0 if sustained(load(sys.argv[3]), float(sys.argv[2])) else 1
    if len(sys.argv) == 3 and sys.argv[1] == "--report":
        report(sys.argv[2])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
