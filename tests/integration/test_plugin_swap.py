"""Swapping a plugin by replacing its .so and restarting (DESIGN: "a swap is
a restart"), with every role in one process on the embedded backends and a
real SMTP server (Debian's python3-aiosmtpd, in this process) behind the
email role.

The plugin swapped is chat_persistence, for its variant built from the same
sources by tests/plugins/swap (version 1.1.0-swap, and an
X-Chat-Persistence-Build header on every message it answers).  The plugins
are copied from the build tree into a temporary plugin directory, as an
operator's install, and the variant is put in place the way an operator
would (write next to it, rename over it) while notifd runs and a client
thread keeps posting.

Covers: the new build is what serves after the restart (host metric
notifd_plugin_info, the startup log line with the version and path, the
header on every answer), the old one until then (the rename does not touch
the mapped file); SIGTERM exits 0 and closes websockets with 1001; every
acknowledged POST (201, or 200 for a retry whose first answer was lost) is
in the history exactly once and mailed exactly once; messages acknowledged
but still in the outbox at SIGTERM are relayed by the new build and
delivered to the reconnected websockets; reconnected clients catch up from
the history and get new messages; nothing is delivered twice across the
restart.  A .so built for another ABI major stops startup with an error
naming the path and both versions, touches no data, and putting a good
build back starts again.
"""
import asyncio
import email
import email.policy
import glob
from http.client import HTTPException
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter

import pytest
import websockets

from conftest import BUILD, NOTIFD, PLUGIN_DIR, SOURCE, http, metric

sys.path.insert(0, os.path.join(SOURCE, "tests", "services"))
smtp_server = pytest.importorskip("smtp_server", reason="python3-aiosmtpd is not installed")

VARIANT = os.path.join(BUILD, "tests", "plugins", "swap", "chat_persistence.so")
BAD_MAJOR = os.path.join(BUILD, "tests", "plugins", "tp_major.so")      # v1 symbol, def says 2.0
BAD_V2ONLY = os.path.join(BUILD, "tests", "plugins", "tp_v2only.so")    # only notifd_plugin_entry_v2
OLD_VERSION, NEW_VERSION, NEW_HEADER = "1.0.0", "1.1.0-swap", "swap-variant"
BUILD_HEADER = "X-Chat-Persistence-Build"

TOKEN = "plugin-swap-internal-token"
A, B = "sender-a", "receiver-b"
STREAM_AB = "3216fea9031bf845"  # ComputeStreamID(sender-a, receiver-b)
RELAY_DELAY = "2s"   # outbox rows wait this long after a commit and after a start
MAX_POSTS = 2000     # bounds of the client thread
POST_SECONDS = 60


async def await_until(pred, timeout=20, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def host_abi():
    out = subprocess.run([NOTIFD, "--version"], capture_output=True, timeout=10).stdout.decode()
    m = re.search(r"plugin ABI (\d+)\.(\d+)", out)
    assert m, out
    return int(m.group(1)), int(m.group(2))


def metric_series(n, name):
    """{frozenset(labels): value} of one metric family."""
    out = {}
    for line in n.metrics().splitlines():
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$', line)
        if m and m.group(1) == name:
            labels = frozenset(re.findall(r'([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
            out[labels] = float(m.group(3))
    return out


def plugin_versions(n):
    got = {}
    for labels, value in metric_series(n, "notifd_plugin_info").items():
        d = dict(labels)
        assert value == 1
        got.setdefault(d["name"], []).append(d["version"])
    return got


def install_plugins(dest):
    """The operator's plugin directory: every built role plugin, flat."""
    os.makedirs(dest)
    found = glob.glob(os.path.join(PLUGIN_DIR, "*", "*.so")) + glob.glob(os.path.join(PLUGIN_DIR, "*.so"))
    for so in found:
        shutil.copy2(so, os.path.join(dest, os.path.basename(so)))
    names = sorted(os.listdir(dest))
    for role in ("chat_ws", "notifications_ws", "chat_persistence", "chat_change_handler", "email"):
        assert role + ".so" in names, names


def replace_file(src, dest):
    """As an operator does it: copy next to the target, then rename over it
    (the running process keeps its mapping of the old inode)."""
    tmp = os.path.join(os.path.dirname(dest), "." + os.path.basename(dest) + ".new")
    shutil.copyfile(src, tmp)
    os.chmod(tmp, 0o755)
    os.rename(tmp, dest)


def write_config(n, plugin_dir, smtp_port):
    with open(n.config_path, "w") as f:
        f.write(
            f"listen: {{address: 127.0.0.1, port: {n.port}}}\n"
            f"admin: {{address: 127.0.0.1, port: {n.admin_port}}}\n"
            f"data_dir: {n.data_dir}\n"
            f"plugin_dirs: [{plugin_dir}]\n"
            "logging: {level: info}\n"
            "shutdown: {deadline: 10s}\n"
            f"auth: {{mode: none, internal_token: {TOKEN}}}\n"
            "plugins:\n"
            "  - name: chat_ws\n"
            "  - name: notifications_ws\n"
            "  - name: chat_persistence\n"
            "    config:\n"
            f"      relay_delay: {RELAY_DELAY}\n"
            "  - name: chat_change_handler\n"
            "  - name: email\n"
            "    config:\n"
            f"      smtp_url: smtp://127.0.0.1:{smtp_port}\n"
            "      starttls: none\n"
            "      from_address: noreply@example.com\n"
            f"      templates_dir: {os.path.join(SOURCE, 'config', 'templates')}\n"
            "      timeout: 5s\n"
            "      retry: {max_attempts: 100, initial_interval: 100ms, max_interval: 300ms, jitter: 0}\n"
            # Mails from the change records (one per acknowledged message,
            # deduped per record) rather than from notifications_ws's event
            # stream, so "mailed exactly once" is about the swapped role.
            "      chat_topic: chat-persistence-change\n"
            "      events_topic: \"\"\n"
        )


@pytest.fixture
def swap_env(notifd_factory, tmp_path):
    for path in (VARIANT, BAD_MAJOR, BAD_V2ONLY):
        assert os.path.exists(path), f"{path} is not built (ninja -C {BUILD})"
    smtp = smtp_server.SmtpServer().start()
    plugin_dir = str(tmp_path / "plugins")
    install_plugins(plugin_dir)
    n = notifd_factory(start=False, name="swap")
    write_config(n, plugin_dir, smtp.port)
    try:
        yield n, plugin_dir, smtp
    finally:
        try:
            n.stop()
        finally:
            smtp.stop()


def log_since(n, offset):
    with open(n.log_path, "rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


def log_size(n):
    return os.path.getsize(n.log_path) if os.path.exists(n.log_path) else 0


def assert_serving(n, plugin_dir, version, log_text):
    versions = plugin_versions(n)
    assert versions.get("chat_persistence") == [version], versions
    for role in ("chat_ws", "notifications_ws", "chat_change_handler", "email"):
        assert len(versions.get(role, [])) == 1, versions
    so = os.path.join(plugin_dir, "chat_persistence.so")
    assert f"plugin chat_persistence {version} loaded from {so}" in log_text, log_text


def build_of(hdrs):
    """The variant's header (None from the production build)."""
    got = [v for k, v in hdrs.items() if k.lower() == BUILD_HEADER.lower()]
    assert len(got) <= 1, hdrs
    return got[0] if got else None


def msg(content, message_id):
    return {"content": content, "stream_id": STREAM_AB, "sender_id": A, "receiver_id": B,
            "message_id": message_id}


def history(n, after=None):
    """The stream's stored messages, newest first, following next_before.
    With `after` (a created_at): what a reconnecting client asks for,
    everything from its newest message on (inclusive bare time)."""
    url = f"{n.url}/chat/streams/{STREAM_AB}/messages?limit=200"
    if after is not None:
        url += "&after=" + urllib.parse.quote(after)
    got, cursor = [], None
    for _ in range(1000):
        st, raw, _ = http("GET", url + (f"&before={cursor}" if cursor else ""))
        assert st == 200, raw
        page = json.loads(raw)
        got += page["messages"]
        cursor = page["next_before"]
        if cursor is None:
            return got
    raise AssertionError("history does not end")


def outbox_ids(data_dir):
    """Message ids of the change records still in the outbox."""
    con = sqlite3.connect(os.path.join(data_dir, "chat.db"), timeout=10)
    try:
        rows = con.execute("SELECT value FROM outbox ORDER BY seq").fetchall()
    finally:
        con.close()
    return [json.loads(json.loads(bytes(v).decode())["after"])["_id"] for (v,) in rows]


def mailed_ids(smtp):
    out = []
    with smtp.lock:
        msgs = list(smtp.messages)
    for m in msgs:
        text = email.message_from_bytes(m.data, policy=email.policy.default) \
            .get_body(("plain",)).get_content()
        out += re.findall(r"\b(?:swap|probe)-[a-z0-9-]+\b", text)
    return out


class Poster(threading.Thread):
    """A client posting messages one after another.  A POST that fails at
    the transport (refused, reset, no answer) is retried with the same
    message_id, as a client with idempotent ids does, until it is
    acknowledged: 201 (created) or 200 (it was stored, the first answer was
    lost).  Bounded by MAX_POSTS and POST_SECONDS."""

    def __init__(self, url):
        super().__init__(daemon=True)
        self.url = url
        self.go = threading.Event()
        self.go.set()
        self.idle = threading.Event()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.acks = []          # (message_id, status, build header or None), in order
        self.transport_errors = 0
        self.other = []         # unexpected answers

    def acked(self):
        with self.lock:
            return list(self.acks)

    def run(self):
        deadline = time.time() + POST_SECONDS
        for i in range(MAX_POSTS):
            self.idle.set()
            while not self.go.wait(0.05):
                if self.stop.is_set():
                    return
            self.idle.clear()
            if self.stop.is_set() or time.time() > deadline:
                return
            mid = f"swap-{i:05d}"
            while time.time() < deadline:
                try:
                    st, raw, hdrs = http("POST", self.url + "/chat/messages", msg(mid, mid),
                                         timeout=5)
                except (OSError, HTTPException):
                    with self.lock:
                        self.transport_errors += 1
                    time.sleep(0.05)
                    continue
                if st in (200, 201):
                    body = json.loads(raw)
                    with self.lock:
                        if body.get("message_id") != mid or body.get("content") != mid:
                            self.other.append((mid, st, raw))
                        self.acks.append((mid, st, build_of(hdrs)))
                else:
                    with self.lock:
                        self.other.append((mid, st, raw))
                break
            time.sleep(0.03)


class Client:
    """One websocket subscriber that records every message it receives."""

    def __init__(self, name, url, notification=False):
        self.name, self.url, self.notification = name, url, notification
        self.frames = []        # (run, message) in arrival order
        self.close_codes = []
        self.task = None

    async def connect(self, run):
        ws = await websockets.connect(self.url, open_timeout=10)
        self.task = asyncio.ensure_future(self._read(ws, run))
        return ws

    async def _read(self, ws, run):
        async for raw in ws:
            m = json.loads(raw)
            if self.notification:
                assert m["notification_type"] == "chat_notification", m
                m = m["payload"]
            self.frames.append((run, m))
        self.close_codes.append(ws.close_code)

    def ids(self, run=None):
        return [m["message_id"] for r, m in self.frames if run is None or r == run]


def run_async(coro, timeout=120):
    return asyncio.run(asyncio.wait_for(coro, timeout))


# ---------------------------------------------------------------------------

def test_swap_on_restart_serves_the_new_build_and_loses_no_acknowledged_message(swap_env):
    n, plugin_dir, smtp = swap_env
    installed = os.path.join(plugin_dir, "chat_persistence.so")
    mark = log_size(n)
    n.start()
    assert_serving(n, plugin_dir, OLD_VERSION, log_since(n, mark))
    st, body, _ = http("PUT", f"{n.url}/email/users/{B}", {"email": "b@example.com", "name": "B"},
                       headers={"X-Notifd-Internal-Token": TOKEN})
    assert st == 200, body

    chat_q = f"stream_id={STREAM_AB}&sender_id={A}&receiver_id={B}"
    clients = [Client("chat-a", f"{n.ws_url}/chat/subscribe-websocket?{chat_q}"),
               Client("chat-b", f"{n.ws_url}/chat/subscribe-websocket?stream_id={STREAM_AB}"
                                f"&sender_id={B}&receiver_id={A}"),
               Client("notif-b", f"{n.ws_url}/notifications/subscribe?user_id={B}",
                      notification=True)]
    poster = Poster(n.url)
    state = {}

    async def scenario():
        loop = asyncio.get_running_loop()

        def in_thread(fn, *args):
            return loop.run_in_executor(None, fn, *args)

        for c in clients:
            await c.connect(1)
        poster.start()

        # Live traffic on the old build, then a quiet point: everything
        # acknowledged so far delivered, the outbox empty, the relay idle.
        await await_until(lambda: len(poster.acked()) >= 20, what="first acknowledgements")
        poster.go.clear()
        await in_thread(poster.idle.wait, 10)
        first = {m for m, _, _ in poster.acked()}
        await await_until(lambda: all(first <= set(c.ids(1)) for c in clients),
                          what="live delivery on the old build")
        await await_until(lambda: outbox_ids(n.data_dir) == [], what="outbox drained")
        await asyncio.sleep(0.3)  # the relay's last (empty) fetch ends

        # From here on nothing is relayed for RELAY_DELAY: what is
        # acknowledged now is acknowledged but undelivered at SIGTERM.
        quiet = state["quiet"] = len(poster.acked())
        poster.go.set()
        await await_until(lambda: len(poster.acked()) >= quiet + 3, what="posts after the quiet point")
        await in_thread(replace_file, VARIANT, installed)
        # The old build still serves: the file was replaced, not the mapping.
        st, raw, hdrs = await in_thread(lambda: http("POST", n.url + "/chat/messages",
                                                     msg("probe-old", "probe-old")))
        assert st == 201, raw
        assert build_of(hdrs) is None
        assert plugin_versions(n)["chat_persistence"] == [OLD_VERSION]
        rc = await in_thread(n.stop)  # SIGTERM; waits for the exit
        assert rc == 0, n.read_log()
        state["pending"] = outbox_ids(n.data_dir)
        state["delivered_run1"] = {c.name: set(c.ids(1)) for c in clients}
        for c in clients:
            await asyncio.wait_for(c.task, 10)
            assert c.close_codes == [1001], (c.name, c.close_codes)

        # Restart on the same config and data: the new build.
        state["mark2"] = log_size(n)
        await in_thread(n.start)
        for c in clients:
            await c.connect(2)
        # The pending changes wait RELAY_DELAY after the start, so the
        # reconnected clients are there when they are delivered.
        assert metric(n, "chat_persistence_relay_published_total") == 0, \
            "the relay published before the clients reconnected"
        newest = max((m for _, m in clients[0].frames), key=lambda m: m["created_at"])
        state["catch_up"] = await in_thread(history, n, newest["created_at"])

        await await_until(lambda: sum(1 for _, _, h in poster.acked() if h) >= 10,
                          what="acknowledgements from the new build")
        poster.stop.set()
        await in_thread(poster.join, 15)
        assert not poster.is_alive()
        acked = {m for m, _, _ in poster.acked()} | {"probe-old"}
        state["acked"] = acked
        await await_until(lambda: all(acked <= set(c.ids()) for c in clients), timeout=30,
                          what="delivery of every acknowledged message")
        await await_until(lambda: acked <= set(mailed_ids(smtp)), timeout=30,
                          what="one mail per acknowledged message")
        state["rc2"] = await in_thread(n.stop)
        for c in clients:
            await asyncio.wait_for(c.task, 10)

    run_async(scenario())
    print(f"acks={len(poster.acked())} old={state['quiet']}+ transport_errors={poster.transport_errors} "
          f"pending_at_sigterm={len(state['pending'])} "
          f"retried={sum(1 for _, st, _ in poster.acked() if st == 200)}")
    assert state["rc2"] == 0, n.read_log()
    assert poster.other == [], poster.other[:5]

    acks = poster.acked()
    ids = [m for m, _, _ in acks]
    assert len(ids) == len(set(ids))
    # Each answer came from exactly one build, the old one strictly before
    # the new one, and the new one answered once it was up.
    builds = [h for _, _, h in acks]
    assert set(builds) == {None, NEW_HEADER}, set(builds)
    first_new = builds.index(NEW_HEADER)
    assert all(h is None for h in builds[:first_new]) and all(h == NEW_HEADER for h in builds[first_new:])
    # 200 = stored by an attempt whose answer was lost; only possible
    # across the restart.
    for m, st, h in acks:
        assert st == 201 or (st == 200 and h == NEW_HEADER), (m, st, h)

    run2_log = log_since(n, state["mark2"])
    assert f"plugin chat_persistence {NEW_VERSION} loaded from {installed}" in run2_log, run2_log
    assert f"plugin chat_persistence {OLD_VERSION}" not in run2_log

    # Acknowledged but undelivered at SIGTERM: exactly what was acknowledged
    # by the old build after the quiet point (plus, possibly, a message
    # stored while its answer was lost), and none of it seen by a client.
    old_after_quiet = {m for m, _, h in acks[state["quiet"]:first_new]} | {"probe-old"}
    for c in clients:
        assert not old_after_quiet & state["delivered_run1"][c.name], \
            (c.name, "relayed before SIGTERM: the quiet window was too short for this machine")
    retried = {m for m, st, _ in acks if st == 200}
    pending = set(state["pending"])
    assert len(pending) == len(state["pending"])
    assert old_after_quiet <= pending <= old_after_quiet | retried, (sorted(pending), sorted(old_after_quiet))
    assert len(pending) >= 4
    for c in clients:
        assert not pending & state["delivered_run1"][c.name]
        # ... delivered by the new build to the reconnected client.
        assert pending <= set(c.ids(2)), (c.name, sorted(pending - set(c.ids(2))))
    # The reconnecting client's history query returns them too.
    assert pending <= {m["message_id"] for m in state["catch_up"]}

    acked = state["acked"]
    for c in clients:
        got = Counter(c.ids())
        assert set(got) == acked, (c.name, sorted(set(got) ^ acked)[:10])
        dup = [m for m, k in got.items() if k > 1]
        assert dup == [], (c.name, "delivered twice", dup[:10])
        assert set(c.ids(1)) | set(c.ids(2)) == acked
    mails = Counter(mailed_ids(smtp))
    assert set(mails) == acked
    assert [m for m, k in mails.items() if k > 1] == [], "mailed twice"

    # History, read by the new build after a second clean restart: every
    # acknowledged message exactly once, with the content it was posted with.
    n.start()
    stored = history(n)
    assert Counter(m["message_id"] for m in stored) == Counter(acked)
    assert all(m["content"] == m["message_id"] for m in stored)
    assert plugin_versions(n)["chat_persistence"] == [NEW_VERSION]


def test_wrong_abi_major_stops_startup_and_the_good_build_starts_again(swap_env):
    n, plugin_dir, smtp = swap_env
    installed = os.path.join(plugin_dir, "chat_persistence.so")
    major, minor = host_abi()
    n.start()
    st, raw, hdrs = http("POST", n.url + "/chat/messages", msg("kept across the failed start", "swap-kept"))
    assert st == 201 and build_of(hdrs) is None, raw
    assert n.stop() == 0

    cases = [
        (BAD_MAJOR, f"plugin 'chat_persistence' ({installed}): ABI major mismatch: "
                    f"plugin built for 2.0, host provides {major}.{minor}"),
        (BAD_V2ONLY, f"plugin 'chat_persistence' ({installed}): built for ABI major 2 "
                     f"(exports notifd_plugin_entry_v2), host provides ABI {major}.{minor}"),
    ]
    for bad, expected in cases:
        replace_file(bad, installed)
        for args in ([NOTIFD, "-c", n.config_path], [NOTIFD, "--check", "-c", n.config_path]):
            r = subprocess.run(args, capture_output=True, timeout=60)
            err = r.stderr.decode(errors="replace")
            assert r.returncode == 1, (args, r.returncode, err)
            assert expected in err, err
            assert n.config_path in err  # file:line:col of the plugin entry
        # Nothing is listening: startup stopped before serving.
        with pytest.raises(OSError):
            http("GET", n.url + "/healthz", timeout=2)

    # The good build back (the new version this time): starts, serves the
    # data of before.
    replace_file(VARIANT, installed)
    mark = log_size(n)
    n.start()
    assert_serving(n, plugin_dir, NEW_VERSION, log_since(n, mark))
    stored = history(n)
    assert [m["message_id"] for m in stored] == ["swap-kept"]
    st, raw, hdrs = http("GET", n.url + "/chat/messages/swap-kept")
    assert st == 200 and build_of(hdrs) == NEW_HEADER, (st, raw, hdrs)
    st, raw, hdrs = http("POST", n.url + "/chat/messages", msg("after the swap", "swap-after"))
    assert st == 201 and build_of(hdrs) == NEW_HEADER, raw
    assert n.stop() == 0
