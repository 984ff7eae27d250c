#!/usr/bin/env python3
"""Kafka broker outage under load, measured (issue 13, item 3).

Starts a real broker (tests/services/kafka.sh), runs bench/kafka_outage
(one producer at --rate msg/s and one consumer group, the host's Kafka
backend as plugins use it), kill -9s the broker --before seconds in, leaves
it down --down seconds, restarts it from the same directory (same port,
same data), and reports:

  resume_s   broker listening again -> first record handled again
  drain_s    broker listening again -> the consumer caught up (less than
             half a second of traffic not yet handled)
  lost       acknowledged (delivery report OK) but never handled
  duplicates records handled more than once

  bench/kafka_outage.py [--build DIR] [--rate 1000] [--before 10] [--down 20]
                        [--after 45] [--runs 1] [--log FILE] [-- kafka_outage args]

Arguments after `--` go to kafka_outage (e.g. `--consumer-prop
session.timeout.ms=45000` to measure librdkafka's defaults, `--prop
debug=cgrp,broker --verbose` with --log FILE for librdkafka's account).
Bounded: about before + down + after + 20 s per run.  Method and numbers:
bench/README.md.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(HERE)
KAFKA_SH = os.path.join(SOURCE, "tests", "services", "kafka.sh")


def wall_ms():
    return int(time.time() * 1000)


def one_run(args, extra, kdir, brokers):
    exe = os.path.join(args.build, "bench", "kafka_outage")
    duration = args.before + args.down + args.after
    log = open(args.log, "a") if args.log else subprocess.DEVNULL
    proc = subprocess.Popen([exe, "--brokers", brokers, "--rate", str(args.rate),
                             "--duration", str(duration), "--drain", "60"] + extra,
                            stdout=subprocess.PIPE, stderr=log, text=True)
    lines = []
    started = threading.Event()

    def reader():
        for line in proc.stdout:
            lines.append(line.split())
            if line.startswith("START"):
                started.set()
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    if not started.wait(90):
        proc.kill()
        raise SystemExit("kafka_outage did not start (see --log)")
    time.sleep(args.before)
    t_kill = wall_ms()
    subprocess.run([KAFKA_SH, "kill", kdir], check=True, timeout=30)
    time.sleep(args.down)
    t_restart = wall_ms()
    r = subprocess.run([KAFKA_SH, "restart", kdir], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        proc.kill()
        raise SystemExit("kafka restart failed: " + r.stderr)
    t_ready = wall_ms()
    proc.wait(timeout=duration + 120)
    t.join(5)
    res = {}
    for ln in lines:
        if ln and ln[0] == "RESULT":
            res = {kv.split("=")[0]: int(kv.split("=")[1]) for kv in ln[1:]}
    gaps = [(int(a), int(b)) for k, a, b in (ln for ln in lines if ln and ln[0] == "GAP")]
    resumed = [b for a, b in gaps if b >= t_ready]
    first_after = min(resumed) if resumed else None
    drained = None
    for ln in lines:
        if ln and ln[0] == "T" and int(ln[1]) >= t_ready:
            produced, handled = int(ln[2]), int(ln[5])
            if produced - handled <= args.rate // 2:
                drained = int(ln[1])
                break
    out = {
        "rate": args.rate, "down_s": round((t_ready - t_kill) / 1000, 1),
        "broker_start_s": round((t_ready - t_restart) / 1000, 1),
        "resume_s": round((first_after - t_ready) / 1000, 1) if first_after else None,
        "drain_s": round((drained - t_ready) / 1000, 1) if drained else None,
        "extra": " ".join(extra),
    }
    out.update(res)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("NOTIFD_BUILD_ROOT",
                                                      os.path.join(SOURCE, "build")))
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--before", type=int, default=10)
    ap.add_argument("--down", type=int, default=20)
    ap.add_argument("--after", type=int, default=45)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--log")
    args, extra = ap.parse_known_args()
    if extra and extra[0] == "--":
        extra = extra[1:]
    kdir = tempfile.mkdtemp(prefix="notifd-kafka-outage-")
    try:
        r = subprocess.run([KAFKA_SH, "start", kdir], capture_output=True, text=True, timeout=900)
        if r.returncode != 0:
            print("SKIPPED: kafka: " + r.stderr.strip(), file=sys.stderr)
            return 2
        brokers = r.stdout.strip().splitlines()[-1]
        rc = 0
        for _ in range(args.runs):
            out = one_run(args, extra, kdir, brokers)
            print(json.dumps(out), flush=True)
            if out.get("lost", 1) != 0:
                rc = 1
        return rc
    finally:
        subprocess.run([KAFKA_SH, "stop", kdir], capture_output=True, timeout=60)
        shutil.rmtree(kdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
