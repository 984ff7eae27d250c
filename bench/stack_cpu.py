#!/usr/bin/env python3
"""CPU time of every process of a tests/distributed/stack.sh stack.

    bench/stack_cpu.py snapshot STACK_DIR >before.json
    bench/stack_cpu.py diff before.json after.json [--messages N]
    bench/stack_cpu.py run STACK_DIR [--messages N] -- COMMAND...

A snapshot sums utime+stime (plus cutime+cstime: children that exited and
were reaped, e.g. PostgreSQL backends) from /proc/PID/stat over each
server's process tree: the notifd instances, nginx (master and workers),
Kafka, Redis, FerretDB, PostgreSQL (postmaster and backends) and the SMTP
sink.  `run` snapshots, runs COMMAND, snapshots again and prints the
difference per server to stderr, largest first (with --messages: us per
message).
Linux only; processes of other users' stacks are not counted.
"""
import json
import shlex
import os
import sys

TICK = os.sysconf("SC_CLK_TCK")


def read_env(stack_dir):
    env = {}
    for name in ("stack.env", "stack.env.stopped"):
        path = os.path.join(stack_dir, name)
        if os.path.exists(path):
            with open(path) as f:
                for line in f:
                    k, _, v = line.rstrip("\n").partition("=")
                    # printf %q: shell quoting
                    words = shlex.split(v) if v else []
                    env[k] = " ".join(words)
            break
    return env


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def roots(stack_dir):
    """{label: pid} of the stack's servers."""
    env = read_env(stack_dir)
    out = {}
    for inst in env.get("STACK_INSTANCES", "").split():
        pid = read_pid(os.path.join(stack_dir, inst, "pid")) or int(env.get(f"STACK_{inst}_PID", 0))
        if pid:
            out[f"{inst} {env.get(f'STACK_{inst}_ROLE', '')}"] = pid
    for label, key in (("nginx", "STACK_NGINX_PID"), ("kafka", "STACK_KAFKA_PID"),
                       ("redis", "STACK_REDIS_PID"), ("ferretdb", "STACK_FERRETDB_PID"),
                       ("smtp", "STACK_SMTP_PID")):
        if env.get(key):
            out[label] = int(env[key])
    pg = read_pid(os.path.join(stack_dir, "ferretdb", "postgres", "postgres.pid"))
    if pg:
        out["postgresql"] = pg
    return out


def proc_table():
    """{pid: (ppid, cpu ticks incl. reaped children)}"""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                s = f.read()
        except OSError:
            continue
        fields = s[s.rindex(")") + 2:].split()
        # fields[0] = state (stat field 3); ppid = 4, utime..cstime = 14..17
        table[int(name)] = (int(fields[1]), sum(int(x) for x in fields[11:15]))
    return table


def snapshot(stack_dir):
    table = proc_table()
    children = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out = {}
    for label, root in roots(stack_dir).items():
        total, todo = 0, [root]
        while todo:
            pid = todo.pop()
            if pid in table:
                total += table[pid][1]
                todo.extend(children.get(pid, []))
        out[label] = total / TICK
    return out


def diff(a, b, messages, out=sys.stdout):
    rows = sorted(((b[k] - a.get(k, 0.0), k) for k in b), reverse=True)
    total = sum(d for d, _ in rows)
    for d, k in rows:
        per = f"  {d / messages * 1e6:8.1f} us/msg" if messages else ""
        print(f"{k:28s} {d:8.2f} s{per}", file=out)
    per = f"  {total / messages * 1e6:8.1f} us/msg" if messages else ""
    print(f"{'total':28s} {total:8.2f} s{per}", file=out)
    return rows, total


def main(argv):
    if len(argv) >= 2 and argv[0] == "snapshot":
        json.dump(snapshot(argv[1]), sys.stdout)
        print()
        return 0
    messages = 0
    if "--messages" in argv:
        i = argv.index("--messages")
        messages = int(argv[i + 1])
        del argv[i:i + 2]
    if len(argv) == 3 and argv[0] == "diff":
        with open(argv[1]) as f1, open(argv[2]) as f2:
            diff(json.load(f1), json.load(f2), messages)
        return 0
    if len(argv) >= 4 and argv[0] == "run" and argv[2] == "--":
        import subprocess
        before = snapshot(argv[1])
        rc = subprocess.call(argv[3:])
        diff(before, snapshot(argv[1]), messages, sys.stderr)
        return rc
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
