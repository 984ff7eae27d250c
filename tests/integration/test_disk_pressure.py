"""Disk pressure on a single node: /readyz turns 503 while the data dir
cannot be written and 200 again once it can; the per-message error lines of
a failing store are rate-limited (ND_LOG_RL_BURST lines per call site per
10 s, then one line with the count).

"Cannot be written" is made without privileges where possible: as root
(chmod does not stop root) the process gets a 1 KiB file-size limit
(RLIMIT_FSIZE through prlimit(2), which root may set on another process):
every write past 1 KiB fails with EFBIG, as writes fail with ENOSPC on a
full disk, and notifd ignores SIGXFSZ. Otherwise the data dir is made
read-only (chmod 0500): the probe cannot create its file, though the
SQLite files already open stay writable, so only readiness is checked.
notifd's log goes through a pipe here, which no file-size limit touches.
"""
import json
import os
import resource
import subprocess
import threading
import time

from conftest import NOTIFD, Notifd, http, wait_until

ROOT = os.geteuid() == 0
BURST = 10  # ND_LOG_RL_BURST in host/log/log.h


class PipedNotifd(Notifd):
    """Notifd whose output is read through a pipe into memory."""

    def spawn(self):
        self.lines = []
        self.log = open(os.devnull, "wb")
        self.proc = subprocess.Popen([NOTIFD, "-c", self.config_path], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=self.env)

        def pump():
            for line in self.proc.stdout:
                self.lines.append(line.decode(errors="replace"))

        threading.Thread(target=pump, daemon=True).start()

    def read_log(self):
        return "".join(self.lines)


def readyz(n):
    st, body, _ = http("GET", f"http://127.0.0.1:{n.admin_port}/readyz")
    return st, json.loads(body)


def post(n, i):
    # stream_id = ComputeStreamID(sender, receiver) (the Go contract, 2.6)
    body = {"content": f"m{i}", "stream_id": "3216fea9031bf845", "sender_id": "sender-a",
            "receiver_id": "receiver-b"}
    return http("POST", n.url + "/chat/persist", body)[0]


def test_readyz_follows_the_data_dir_and_store_errors_are_rate_limited(tmp_path):
    n = PipedNotifd(tmp_path, "  - name: chat_persistence\n")
    n.start()
    try:
        st, body = readyz(n)
        assert st == 200 and body["checks"]["data_dir"] is True, body
        assert post(n, 0) == 201

        if ROOT:
            resource.prlimit(n.proc.pid, resource.RLIMIT_FSIZE, (1024, resource.RLIM_INFINITY))
        else:
            os.chmod(n.data_dir, 0o500)
        t0 = time.monotonic()
        wait_until(lambda: readyz(n)[0] == 503, timeout=10, what="readyz 503")
        flipped = time.monotonic() - t0
        st, body = readyz(n)
        assert body["checks"]["data_dir"] is False and body["data_dir_error"], body
        assert flipped < 5, flipped  # the probe runs every 2 s
        assert "is not writable" in n.read_log()

        if ROOT:
            # Every POST now fails in the store: 500s, and the store's
            # per-message error line is written BURST times, not 300.
            codes = [post(n, i) for i in range(1, 301)]
            assert codes.count(500) >= 250, {c: codes.count(c) for c in set(codes)}
            failed_lines = [ln for ln in n.lines if "storing message" in ln]
            assert 1 <= len(failed_lines) <= BURST, len(failed_lines)
            # Once the 10 s window is over, one line reports the rest.
            wait_until(lambda: any("more like this in the last 10s" in ln and
                                   "storing message" in ln for ln in n.lines),
                       timeout=15, what="the suppressed count")
            summary = next(ln for ln in n.lines if "more like this" in ln
                           and "storing message" in ln)
            suppressed = int(summary.split('msg="')[1].split()[0])
            print(f"disk full: {codes.count(500)} POSTs answered 500, readyz 503 after "
                  f"{flipped:.1f} s, {len(failed_lines)} 'storing message' lines + 1 summary "
                  f"({suppressed} more), {len(n.lines)} log lines in all")
            assert suppressed + len(failed_lines) >= codes.count(500), summary
            resource.prlimit(n.proc.pid, resource.RLIMIT_FSIZE,
                             (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        else:
            os.chmod(n.data_dir, 0o750)

        t0 = time.monotonic()
        wait_until(lambda: readyz(n)[0] == 200, timeout=10, what="readyz 200 again")
        assert time.monotonic() - t0 < 5
        assert "is writable again" in n.read_log()
        wait_until(lambda: post(n, 1000) == 201, timeout=10, what="a POST stored again")
        assert n.stop() == 0
        time.sleep(0.2)  # the pipe's last lines
        log = n.read_log()
        assert "ERROR: AddressSanitizer" not in log and "runtime error:" not in log, log[-3000:]
    finally:
        if not ROOT:
            os.chmod(n.data_dir, 0o750)
        n.stop()
