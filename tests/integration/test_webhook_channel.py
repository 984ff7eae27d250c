"""The webhook channel of examples/webhook_channel, as a third party builds
and runs it (docs/plugin-guide.md, "Writing a channel plugin").

The build tree is installed into a scratch root (meson install with
DESTDIR, as tests/integration/out_of_tree_plugin.sh does) and the example
is built there by its own Makefile with nothing but `pkg-config notifd-sdk`.
notifd runs single node (embedded bus); a receiver written here (Python's
http.server on 127.0.0.1) records every POST, dedupes on X-Notifd-Event-Id
and can answer 500 for a while or 400 for chosen events.  Events are
produced onto `notification-events` with `notifd bus produce` in the shape
docs/events.md gives (spec of issue 17, section 1).

Covers: the POST (body = the event's bytes, Content-Type, the event id and
attempt headers); retries with backoff on 500 until delivered; 400 and a
malformed event dead-lettered to notification-events.dlq with the reason;
preferences in the headers (muted channel, quiet hours) skip the event and
are counted; the metrics; a swap (the .so replaced by a rebuilt one with
another version, SIGTERM, start) while events keep coming and the receiver
fails now and then: every event arrives, the new build serves after the
restart; `notifd --check` names file:line:col of a bad `url` (ABI 1.2
config_error); and one end-to-end case from POST /notifications/purchase,
skipped while notifications_ws does not publish the event stream.
"""
import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import BUILD, NOTIFD, SOURCE, http, metric, wait_until

TOPIC = "notification-events"
EXAMPLE = os.path.join(SOURCE, "examples", "webhook_channel")


# ---- the SDK installed into a scratch root, the example built against it ----

def sanitizer_flags():
    """-fsanitize=... when the build under test is sanitized, so the
    plugin's code is checked too (and links against the same runtime)."""
    r = subprocess.run(["meson", "introspect", BUILD, "--buildoptions"], capture_output=True,
                       timeout=60)
    if r.returncode != 0:
        return ""
    for opt in json.loads(r.stdout):
        if opt["name"] == "b_sanitize" and opt["value"] not in ("none", ""):
            return f"-fsanitize={opt['value']}"
    return ""


@pytest.fixture(scope="module")
def sdk(tmp_path_factory):
    """Returns build(version) -> path of a webhook.so built out of tree."""
    root = tmp_path_factory.mktemp("sdk")
    env = dict(os.environ, DESTDIR=str(root / "root"))
    r = subprocess.run(["meson", "install", "-C", BUILD, "--no-rebuild", "--quiet"],
                       capture_output=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr.decode()
    pcs = [os.path.join(d, f) for d, _, fs in os.walk(root / "root") for f in fs
           if f == "notifd-sdk.pc"]
    assert pcs, "notifd-sdk.pc was not installed"
    san = sanitizer_flags()
    built = {}

    def build(version):
        if version in built:
            return built[version]
        src = root / f"webhook-{version}"
        shutil.copytree(EXAMPLE, src)
        env = dict(os.environ, PKG_CONFIG_PATH=os.path.dirname(pcs[0]),
                   PKG_CONFIG_SYSROOT_DIR=str(root / "root"))
        r = subprocess.run(["make", "-s", "-C", str(src), f"VERSION={version}",
                            f"CFLAGS=-O1 -g -Wall -Wextra -Werror {san}", f"LDFLAGS={san}"],
                           capture_output=True, env=env, timeout=300)
        assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
        built[version] = str(src / "webhook.so")
        return built[version]

    return build


# ---- the receiver ----------------------------------------------------------

class Receiver:
    """An HTTP endpoint on 127.0.0.1 that records every request.
    `fail_next` answers 500 to that many requests; events whose id is in
    `reject` get 400; `fail_every` answers 500 to every n-th request."""

    def __init__(self, port=0):
        self.lock = threading.Lock()
        self.requests = []      # dicts: id, attempt, agent, body, status
        self.fail_next = 0
        self.fail_every = 0
        self.reject = set()
        rec = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with rec.lock:
                    eid = self.headers.get("X-Notifd-Event-Id")
                    if eid in rec.reject:
                        status = 400
                    elif rec.fail_next > 0:
                        rec.fail_next -= 1
                        status = 500
                    elif rec.fail_every and (len(rec.requests) + 1) % rec.fail_every == 0:
                        status = 500
                    else:
                        status = 200
                    rec.requests.append({
                        "id": eid, "attempt": self.headers.get("X-Notifd-Attempt"),
                        "agent": self.headers.get("User-Agent"),
                        "type": self.headers.get("Content-Type"),
                        "extra": self.headers.get("X-Extra"),
                        "path": self.path, "body": body, "status": status})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self):
        return self.server.server_address[1]

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/hook"

    def all(self):
        with self.lock:
            return list(self.requests)

    def accepted(self):
        """{event id: body} of the events answered 200 (deduped)."""
        return {r["id"]: r["body"] for r in self.all() if r["status"] == 200}

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


# ---- helpers ------------------------------------------------------------------

def event(user, eid, ntype="purchase_notification", **payload):
    return json.dumps({"id": eid, "user_id": user, "notification_type": ntype,
                       "timestamp": "2026-12-07T21:00:00.123456789Z",
                       "payload": payload or {"order_id": f"o{eid}"}}, separators=(",", ":"))


def produce(n, user, value, headers=None):
    args = [NOTIFD, "bus", "produce", "-d", n.data_dir, "-k", user]
    for k, v in (headers or {}).items():
        args += ["-H", f"{k}={v}"]
    r = subprocess.run(args + [TOPIC, value], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr.decode()


def dead_letters(n, count, idle="5s"):
    r = subprocess.run([NOTIFD, "bus", "tail", "-d", n.data_dir, "-B", "-n", str(count), "-t",
                        idle, TOPIC + ".dlq"], capture_output=True, timeout=60)
    return [json.loads(line) for line in r.stdout.decode().splitlines() if line.strip()]


def webhook_yaml(so, url, **extra):
    text = ("  - name: webhook\n"
            f"    path: {so}\n"
            "    config:\n"
            f"      url: {url}\n"
            "      timeout: 2s\n"
            "      retry: {max_attempts: 200, initial_interval: 20ms, max_interval: 200ms}\n")
    return text + "".join(f"      {k}: {v}\n" for k, v in extra.items())


def log_since(n, offset):
    with open(n.log_path, "rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


def replace_file(src, dest):
    """As an operator does it: copy next to the target, rename over it."""
    tmp = os.path.join(os.path.dirname(dest), "." + os.path.basename(dest) + ".new")
    shutil.copyfile(src, tmp)
    os.chmod(tmp, 0o755)
    os.rename(tmp, dest)


# ---- tests -------------------------------------------------------------------

def test_posts_retries_dead_letters_and_honours_preferences(sdk, receiver, notifd_factory):
    so = sdk("1.0.0")
    n = notifd_factory(webhook_yaml(so, receiver.url, headers='["X-Extra: yes"]'))

    # Three 500s, then the first event goes through.
    receiver.fail_next = 3
    first = event("u1", 1)
    produce(n, "u1", first)
    wait_until(lambda: "u1:1" in receiver.accepted(), what="u1:1 delivered after 500s")
    tries = [r for r in receiver.all() if r["id"] == "u1:1"]
    assert [r["status"] for r in tries] == [500, 500, 500, 200]
    assert [r["attempt"] for r in tries] == ["1", "2", "3", "4"]
    got = tries[-1]
    assert got["body"] == first.encode()      # the event's bytes, as they came
    assert got["type"] == "application/json"
    assert got["agent"] == "notifd-webhook/1.0.0"
    assert got["extra"] == "yes"              # config `headers`
    assert got["path"] == "/hook"

    # 400 for one event: dead-lettered at once, the next one still delivered.
    receiver.reject.add("u2:7")
    produce(n, "u2", event("u2", 7))
    produce(n, "u2", "this is not JSON")
    produce(n, "u2", json.dumps({"id": "8", "user_id": "u2", "notification_type": "x"}))
    # Preferences: muted for this channel, quiet hours, muted for others only.
    produce(n, "u2", event("u2", 9), {"notifd-muted": "push,webhook"})
    produce(n, "u2", event("u2", 10), {"notifd-quiet": "1"})
    produce(n, "u2", event("u2", 11), {"notifd-muted": "push, email", "notifd-delivered": "0"})
    # One user's events stay in order on one partition: when 12 arrives,
    # everything before it has been handled.
    produce(n, "u2", event("u2", 12))
    wait_until(lambda: "u2:12" in receiver.accepted(), what="u2:12 delivered")
    ids = [r["id"] for r in receiver.all()]
    assert ids.count("u2:7") == 1, ids        # a 4xx is not retried
    assert "u2:9" not in ids and "u2:10" not in ids
    assert "u2:11" in receiver.accepted()
    assert ids.index("u2:7") < ids.index("u2:11") < ids.index("u2:12")

    dlq = dead_letters(n, 3)
    by_error = {d["headers"]["notifd-error"]: d for d in dlq}
    assert set(by_error) == {"webhook answered 400", "malformed event: not JSON",
                             "malformed event: no integer id"}, dlq
    assert json.loads(by_error["webhook answered 400"]["value"])["id"] == 7
    assert by_error["webhook answered 400"]["key"] == "u2"
    assert by_error["malformed event: not JSON"]["value"] == "this is not JSON"
    assert all(d["headers"]["notifd-original-topic"] == TOPIC for d in dlq)

    assert metric(n, "webhook_deliveries_total", result="delivered") == 3
    assert metric(n, "webhook_deliveries_total", result="rejected") == 1
    assert metric(n, "webhook_deliveries_total", result="malformed") == 2
    assert metric(n, "webhook_deliveries_total", result="muted") == 1
    assert metric(n, "webhook_deliveries_total", result="quiet") == 1
    assert metric(n, "webhook_retries_total") == 3
    assert metric(n, "webhook_request_duration_seconds_count") == 7  # 4 + 400 + 2
    assert n.stop() == 0


def test_retries_run_out_into_the_dead_letter_topic(sdk, receiver, notifd_factory):
    so = sdk("1.0.0")
    n = notifd_factory(webhook_yaml(so, receiver.url).replace("max_attempts: 200",
                                                              "max_attempts: 3"))
    receiver.fail_next = 1000
    produce(n, "u3", event("u3", 5))
    wait_until(lambda: metric(n, "webhook_deliveries_total", result="exhausted") == 1,
               what="retries exhausted")
    assert [r["status"] for r in receiver.all()] == [500, 500, 500]
    dlq = dead_letters(n, 1)
    assert len(dlq) == 1 and dlq[0]["headers"]["notifd-error"] == "webhook answered 500", dlq
    assert dlq[0]["headers"]["notifd-attempts"] == "3"
    assert n.stop() == 0


def test_connect_errors_are_retried_until_the_receiver_is_up(sdk, notifd_factory):
    so = sdk("1.0.0")
    gone = Receiver()
    port, url = gone.port, gone.url
    gone.close()  # nobody listens there now
    n = notifd_factory(webhook_yaml(so, url))
    produce(n, "u4", event("u4", 1))
    wait_until(lambda: metric(n, "webhook_retries_total") >= 2, what="retries on refused connects")
    up = Receiver(port)
    try:
        wait_until(lambda: "u4:1" in up.accepted(), what="delivery once the receiver is up")
    finally:
        up.close()
    assert metric(n, "webhook_deliveries_total", result="delivered") == 1
    assert n.stop() == 0
