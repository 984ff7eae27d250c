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
fails now and then, and fails everything just before SIGTERM so events are
waiting for a retry: every event arrives (the receiver dedupes), in order
per user, and the new build serves after the restart; `notifd --check` names file:line:col of a bad `url` (ABI 1.2
config_error); one end-to-end case from POST /notifications/purchase,
skipped while notifications_ws does not publish the event stream; and a
config-declared type end to end: POST, inbox, websocket frame, this
plugin and email over SMTP.
"""
import asyncio
import email
import email.policy
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import websockets

from conftest import BUILD, NOTIFD, SOURCE, checked_exits, http, metric, wait_until

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


@pytest.fixture
def notifd_factory(notifd_factory):
    """Every daemon exits 0 on SIGTERM with no sanitizer report."""
    yield from checked_exits(notifd_factory)


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
    r = subprocess.run([NOTIFD, "bus", "tail", "-d", n.data_dir, "-B", "-f", "-n", str(count), "-t",
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


class Producer(threading.Thread):
    """Produces `count` events for a few users, one after another, plus one
    malformed record half-way; records what it produced."""

    def __init__(self, n, count):
        super().__init__(daemon=True)
        self.n, self.count = n, count
        self.lock = threading.Lock()
        self.ids = []           # event ids produced, in order
        self.error = None

    def produced(self):
        with self.lock:
            return list(self.ids)

    def run(self):
        try:
            for i in range(1, self.count + 1):
                user = f"swap-{i % 3}"
                produce(self.n, user, event(user, i))
                with self.lock:
                    self.ids.append(f"{user}:{i}")
                if i == self.count // 2:
                    produce(self.n, "swap-bad", "{\"id\": 1, \"user_id\": ")
                time.sleep(0.02)
        except Exception as e:  # reported by the test
            self.error = e


def test_swap_while_events_flow_loses_nothing(sdk, receiver, notifd_factory, tmp_path):
    old_so, new_so = sdk("1.0.0"), sdk("1.0.1-swap")
    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    installed = str(plugin_dir / "webhook.so")
    shutil.copy2(old_so, installed)
    n = notifd_factory(webhook_yaml(installed, receiver.url), start=False)
    n.start()
    assert f"plugin webhook 1.0.0 loaded from {installed}" in n.read_log()
    receiver.fail_every = 4   # retries are pending at any moment, also at SIGTERM

    producer = Producer(n, 90)
    producer.start()
    wait_until(lambda: len(receiver.accepted()) >= 15, timeout=60, what="first deliveries")
    replace_file(new_so, installed)
    # Still the old build: the rename does not touch the mapped file.
    seen = len(receiver.all())
    wait_until(lambda: len(receiver.all()) >= seen + 3, what="deliveries after the rename")
    assert {r["agent"] for r in receiver.all()} == {"notifd-webhook/1.0.0"}
    # The receiver fails everything for a moment, so events are waiting for
    # a retry (not committed) when SIGTERM comes.
    receiver.fail_next = 10 ** 6
    k = len(receiver.all())
    wait_until(lambda: len(receiver.all()) >= k + 2, what="failing POSTs before SIGTERM")
    assert n.stop() == 0, n.read_log()[-3000:]
    stopped_at = len(receiver.all())
    pending = {r["id"] for r in receiver.all()[k:]} - set(receiver.accepted())
    assert pending
    receiver.fail_next = 0
    # Events keep coming while notifd is down.
    down_from = len(producer.produced())
    wait_until(lambda: len(producer.produced()) >= down_from + 5, what="events produced while down")
    mark = os.path.getsize(n.log_path)
    n.start()
    run2 = log_since(n, mark)
    assert f"plugin webhook 1.0.1-swap loaded from {installed}" in run2, run2
    assert "webhook 1.0.0" not in run2

    producer.join(120)
    assert not producer.is_alive() and producer.error is None, producer.error
    produced = producer.produced()
    wait_until(lambda: set(produced) <= set(receiver.accepted()), timeout=90,
               what="every produced event at the receiver")

    reqs = receiver.all()
    accepted = receiver.accepted()
    assert set(accepted) == set(produced), sorted(set(accepted) ^ set(produced))[:10]
    for r in reqs:                       # the bytes that were produced
        user, i = r["id"].split(":")
        assert r["body"] == event(user, int(i)).encode()
    # Each request came from one build: the old one before the restart, the
    # new one after it.
    agents = [r["agent"] for r in reqs]
    assert set(agents[:stopped_at]) == {"notifd-webhook/1.0.0"}
    assert set(agents[stopped_at:]) == {"notifd-webhook/1.0.1-swap"}
    # What was waiting for a retry at SIGTERM came from the new build.
    for r in reqs:
        if r["id"] in pending and r["status"] == 200:
            assert r["agent"] == "notifd-webhook/1.0.1-swap", r
    # One user's events arrive in the order produced (first deliveries).
    for u in range(3):
        firsts = []
        for r in reqs:
            if r["status"] == 200 and r["id"].startswith(f"swap-{u}:") and r["id"] not in firsts:
                firsts.append(r["id"])
        assert firsts == [e for e in produced if e.startswith(f"swap-{u}:")]
    dups = {k: c for k, c in Counter(r["id"] for r in reqs if r["status"] == 200).items() if c > 1}
    print(f"events={len(produced)} requests={len(reqs)} pending_at_sigterm={sorted(pending)} "
          f"failed={sum(1 for r in reqs if r['status'] != 200)} redelivered={dups}")

    bad = [d for d in dead_letters(n, 1) if d["key"] == "swap-bad"]
    assert bad and bad[0]["headers"]["notifd-error"] == "malformed event: not JSON", bad
    info = [line for line in n.metrics().splitlines() if line.startswith("notifd_plugin_info{")
            and 'name="webhook"' in line]
    assert len(info) == 1 and 'version="1.0.1-swap"' in info[0], info
    assert n.stop() == 0


def test_check_reports_bad_config_with_file_line_col(sdk, tmp_path):
    so = sdk("1.0.0")

    def check(config_lines):
        path = tmp_path / "webhook.yaml"
        path.write_text("listen: {address: 127.0.0.1, port: 8080}\n"
                        "admin: {port: -1}\n"
                        f"data_dir: {tmp_path}/data\n"
                        "plugins:\n"
                        "  - name: webhook\n"
                        f"    path: {so}\n"
                        "    config:\n" + "".join(f"      {line}\n" for line in config_lines))
        r = subprocess.run([NOTIFD, "--check", "-c", str(path)], capture_output=True, timeout=60)
        assert r.returncode == 1, r
        return str(path), (r.stdout + r.stderr).decode()

    path, out = check(["url: ftp://example.com/hook",     # line 8
                       "channel: Web Hook",               # line 9
                       "timeout: soon",                   # line 10
                       "headers: [\"X-Ok: 1\", \"no colon\"]"])
    assert (f"{path}:8:12: key 'plugins[0].config.url': expected an http:// or https:// URL, "
            "got 'ftp://example.com/hook'") in out, out
    assert (f"{path}:9:16: key 'plugins[0].config.channel': expected 1-32 of [a-z0-9_-], "
            "got 'Web Hook'") in out, out
    assert (f"{path}:10:16: key 'plugins[0].config.timeout': expected duration, "
            "got 'soon'") in out, out
    assert (f"{path}:11:16: key 'plugins[0].config.headers': item 1: expected 'Name: value', "
            "got 'no colon'") in out, out
    assert "init failed" not in out, out

    # An absent required key: at the plugin's config map.
    path, out = check(["topic: notification-events"])
    assert f"{path}:8:7: key 'plugins[0].config.url': is required" in out, out

    # A good config passes the check.
    path = tmp_path / "good.yaml"
    path.write_text("listen: {address: 127.0.0.1, port: 8080}\nadmin: {port: -1}\n"
                    f"data_dir: {tmp_path}/data\nplugins:\n  - name: webhook\n    path: {so}\n"
                    "    config: {url: 'http://127.0.0.1:9/hook'}\n")
    r = subprocess.run([NOTIFD, "--check", "-c", str(path)], capture_output=True, timeout=60)
    assert r.returncode == 0, r


def events_published():
    readme = os.path.join(SOURCE, "plugins", "notifications_ws", "README.md")
    with open(readme, encoding="utf-8") as f:
        return "events_topic" in f.read()


def test_end_to_end_from_a_stored_notification(sdk, receiver, notifd_factory):
    if not events_published():
        pytest.skip("notifications_ws in this tree does not publish the notification event "
                    "stream yet (no `events_topic` in plugins/notifications_ws/README.md; "
                    "issue 17 section 1)")
    so = sdk("1.0.0")
    n = notifd_factory("  - name: notifications_ws\n" + webhook_yaml(so, receiver.url))
    purchase = {"order_id": "e2e-1", "buyer_id": "b", "shop_owner_id": "s", "product_name": "Tea",
                "amount": 1.5, "currency": "USD", "status": "confirmed",
                "purchased_at": "2025-01-02T03:04:05+07:00"}
    st, body, _ = http("POST", f"{n.url}/notifications/purchase?user_id=e2e-user", purchase)
    assert st == 200, body
    st, raw, _ = http("GET", f"{n.url}/notifications?user_id=e2e-user")
    assert st == 200, raw
    stored = json.loads(raw)["notifications"]
    assert len(stored) == 1, stored
    eid = f"e2e-user:{stored[0]['id']}"
    wait_until(lambda: eid in receiver.accepted(), timeout=30, what="the webhook for the purchase")
    ev = json.loads(receiver.accepted()[eid])
    assert ev["user_id"] == "e2e-user" and ev["id"] == stored[0]["id"]
    assert ev["notification_type"] == "purchase_notification"
    assert ev["payload"]["order_id"] == "e2e-1"
    assert ev["timestamp"] == stored[0]["timestamp"]

    # The user turns the webhook off for purchases (issue 17: any channel
    # name in preferences): the next purchase is not posted, a shipping
    # update after it is.
    prefs = {"channels": {"purchase_notification": {"webhook": False}}}
    st, raw, _ = http("PUT", f"{n.url}/users/e2e-user/preferences", prefs)
    assert st == 200, raw
    assert http("POST", f"{n.url}/notifications/purchase?user_id=e2e-user", purchase)[0] == 200
    shipping = {"order_id": "e2e-1", "tracking_number": "T", "status": "shipped", "location": "L",
                "estimated_delivery": "0001-01-01T00:00:00Z", "updated_at": "0001-01-01T00:00:00Z"}
    assert http("POST", f"{n.url}/notifications/shipping-update?user_id=e2e-user",
                shipping)[0] == 200
    wait_until(lambda: any(json.loads(b)["notification_type"] == "shipping_update_notification"
                           for b in receiver.accepted().values()), timeout=30,
               what="the shipping update's webhook")
    types = [json.loads(b)["notification_type"] for b in receiver.accepted().values()]
    assert types.count("purchase_notification") == 1, types
    assert metric(n, "webhook_deliveries_total", result="muted") == 1
    assert n.stop() == 0


def test_declared_type_end_to_end(sdk, receiver, notifd_factory, tmp_path):
    """Issue 17's acceptance for a type declared in config only: POST,
    inbox, websocket frame, the out-of-tree channel plugin and email."""
    sys.path.insert(0, os.path.join(SOURCE, "tests", "services"))
    smtp_server = pytest.importorskip("smtp_server", reason="python3-aiosmtpd is not installed")
    srv = smtp_server.SmtpServer().start()
    try:
        tdir = tmp_path / "templates"
        shutil.copytree(os.path.join(SOURCE, "config", "templates"), tdir)
        (tdir / "order-cancelled.tmpl").write_text(
            "Subject: Order {{order_id}} was cancelled\n\n"
            "Hi {{recipient_name}}, because: {{reason}} (refund {{refund}})\n")
        so = sdk("1.0.0")
        n = notifd_factory(
            "  - name: notifications_ws\n"
            "    config:\n"
            "      types:\n"
            "        - {name: order-cancelled, required: [order_id, reason]}\n"
            "  - name: email\n"
            "    config:\n"
            f"      smtp_url: smtp://127.0.0.1:{srv.port}\n"
            "      starttls: none\n"
            "      from_address: noreply@example.com\n"
            f"      templates_dir: {tdir}\n"
            "      types: [order-cancelled]\n"
            + webhook_yaml(so, receiver.url),
            extra_yaml="auth: {mode: none, internal_token: e2e-internal}\n")
        auth = {"X-Notifd-Internal-Token": "e2e-internal"}
        st, raw, _ = http("PUT", f"{n.url}/email/users/shop",
                          {"email": "shop@example.com", "name": "Shop"}, headers=auth)
        assert st == 200, raw
        body = {"order_id": "ORD-1", "reason": "out of stock", "refund": 12.5}

        async def post_and_receive():
            ws_url = n.url.replace("http://", "ws://") + "/notifications/subscribe?user_id=shop"
            async with websockets.connect(ws_url, open_timeout=15) as ws:
                st, raw, _ = await asyncio.get_running_loop().run_in_executor(None, lambda: http(
                    "POST", f"{n.url}/notifications/order-cancelled?user_id=shop", body,
                    headers=auth))
                assert st == 200 and json.loads(raw)["delivered"] == 1, raw
                return json.loads(await asyncio.wait_for(ws.recv(), 15))

        frame = asyncio.run(asyncio.wait_for(post_and_receive(), 60))
        assert list(frame) == ["notification_type", "timestamp", "payload"]
        assert frame["notification_type"] == "order_cancelled_notification"
        assert frame["payload"] == body
        st, raw, _ = http("GET", f"{n.url}/notifications?user_id=shop")
        stored = json.loads(raw)["notifications"]
        assert [s["payload"] for s in stored] == [body], stored
        eid = f"shop:{stored[0]['id']}"
        wait_until(lambda: eid in receiver.accepted(), timeout=30, what="the webhook")
        ev = json.loads(receiver.accepted()[eid])
        assert ev["notification_type"] == "order_cancelled_notification"
        assert ev["payload"] == body and ev["timestamp"] == stored[0]["timestamp"]
        mails = srv.wait_for(1, timeout=30)
        assert len(mails) == 1 and mails[0].rcpt_tos == ["shop@example.com"]
        m = email.message_from_bytes(mails[0].data, policy=email.policy.default)
        assert m["Subject"] == "Order ORD-1 was cancelled"
        assert "because: out of stock (refund 12.5)" in m.get_body(("plain",)).get_content()
        # A body without a required field: 400 naming it, nothing stored or sent.
        st, raw, _ = http("POST", f"{n.url}/notifications/order-cancelled?user_id=shop",
                          {"order_id": "ORD-2"}, headers=auth)
        assert st == 400 and "reason" in json.loads(raw)["error"], raw
        assert len(json.loads(http("GET", f"{n.url}/notifications?user_id=shop")[1])
                   ["notifications"]) == 1
        assert n.stop() == 0
        assert len(srv.messages) == 1 and len(receiver.accepted()) == 1
    finally:
        srv.stop()
