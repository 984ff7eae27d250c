"""webpush plugin end to end against a push service on 127.0.0.1 written
here, that does what a real one does (RFC 8030 / RFC 8292 / RFC 8291): it
verifies the VAPID JWT (ES256 with the key from `k=`, aud = its origin, exp
in the future, a sub) with PyJWT and py_vapid, and decrypts the aes128gcm
body with http_ece (PyPI) on Python's cryptography, none of it notifd's code.
http_ece and py_vapid come from the venv tests/services/pyenv.sh keeps; when
it cannot be built the suite reports SKIPPED with the reason.

Covers: subscribe / list / delete, bad subscriptions refused with nothing
stored, a send decrypted to the notification's JSON, the truncated stub for
a large one, 410 and 404 removing the subscription, 500 then 201 retried and
delivered once, per-user isolation, token auth mode (users) and the internal
send route, the VAPID key kept across a restart, clean exits on SIGTERM (also
with a retry waiting).

The notification event stream (docs/events.md): events produced onto
`notification-events` with `notifd bus produce` (embedded bus, with the
notifd-* headers) become pushes whose decrypted plaintext is the
notification's bytes; delivered > 0, muted and quiet events are not pushed;
a redelivered event is pushed once; invalid events are dead-lettered with
the reason.  notifications_ws producing those events itself (POST a
notification, get the push) when its tree has the event stream.  The
subscription store on MongoDB (FerretDB v1 from tests/services/ferretdb.sh;
SKIPPED with the reason when it cannot run).
"""
import base64
import json
import os
import stat
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import (NOTIFD, SANITIZER_MARKS, SOURCE, checked_exits, free_port, http, metric, plugin_yaml,
                      wait_until)


def _venv_site():
    """Puts the pyenv.sh venv's site-packages on sys.path; skips the module
    with the reason when the venv cannot be made."""
    r = subprocess.run([os.path.join(SOURCE, "tests", "services", "pyenv.sh"), "setup"],
                       capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        pytest.skip(f"no venv with http_ece/py_vapid: {r.stderr.strip()}", allow_module_level=True)
    py = r.stdout.strip().splitlines()[-1]
    site = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, timeout=60).stdout.strip()
    if site and site not in sys.path:
        sys.path.append(site)


_venv_site()
http_ece = pytest.importorskip("http_ece", reason="http_ece is not installed")
py_vapid_jwt = pytest.importorskip("py_vapid.jwt", reason="py_vapid is not installed")
jwt = pytest.importorskip("jwt", reason="python3-jwt (PyJWT) is not installed")
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

INTERNAL = "webpush-test-internal-token"
JWT_SECRET = "webpush-test-secret-0123456789abcdef"


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def unb64u(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


# ---- the push service ------------------------------------------------------------

class PushService:
    """An RFC 8030 push resource per path.  `answers[path]` is the list of
    statuses to give in order (then 201).  Every request is recorded with
    its verified VAPID claims and its decrypted payload (or the error)."""

    def __init__(self):
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.keys = {}      # path -> (private key, auth secret)
        self.answers = {}   # path -> [status, ...]
        self.requests = []  # dicts, in arrival order
        self.lock = threading.Lock()
        svc = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                rec = svc.record(self.path, dict(self.headers), body)
                self.send_response(rec["status"])
                self.send_header("Content-Length", "0")
                if rec["status"] == 201:
                    self.send_header("Location", f"{svc.origin}/message/{len(svc.requests)}")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def subscription(self, name, **extra):
        """A browser-side subscription: a fresh P-256 key pair and auth
        secret; the PushSubscription JSON the browser would send."""
        key = ec.generate_private_key(ec.SECP256R1())
        auth = os.urandom(16)
        path = f"/push/{name}"
        self.keys[path] = (key, auth)
        point = key.public_key().public_bytes(serialization.Encoding.X962,
                                              serialization.PublicFormat.UncompressedPoint)
        sub = {"endpoint": self.origin + path, "expirationTime": None,
               "keys": {"p256dh": b64u(point), "auth": b64u(auth)}}
        sub.update(extra)
        return sub

    def verify_vapid(self, headers):
        """What a push service checks (RFC 8292 section 4.2)."""
        authz = headers.get("Authorization", "")
        assert authz.startswith("vapid "), authz
        params = dict(p.strip().split("=", 1) for p in authz[len("vapid "):].split(","))
        token, k = params["t"], params["k"]
        pub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64u(k))
        claims = jwt.decode(token, pub, algorithms=["ES256"], audience=self.origin,
                            options={"require": ["exp", "aud", "sub"]})
        assert claims["exp"] > time.time() and claims["exp"] <= time.time() + 24 * 3600 + 60
        assert claims["sub"].startswith(("mailto:", "https:"))
        assert jwt.get_unverified_header(token)["alg"] == "ES256"
        # py_vapid's own verification of the same token.
        assert py_vapid_jwt.decode(token, k)["aud"] == self.origin
        return claims, k

    def record(self, path, headers, body):
        rec = {"path": path, "headers": headers, "body": body}
        try:
            rec["claims"], rec["k"] = self.verify_vapid(headers)
            assert headers.get("Content-Encoding") == "aes128gcm"
            assert headers.get("Content-Type") == "application/octet-stream"
            assert headers.get("Urgency") == "normal"
            assert int(headers.get("TTL")) > 0
            key, auth = self.keys[path]
            rec["plain"] = http_ece.decrypt(body, private_key=key, auth_secret=auth,
                                            version="aes128gcm")
        except Exception as e:  # recorded; the test asserts on it
            rec["error"] = f"{type(e).__name__}: {e}"
        with self.lock:
            queue = self.answers.get(path) or []
            rec["status"] = queue.pop(0) if queue else 201
            self.requests.append(rec)
        return rec

    def calls(self, path=None):
        with self.lock:
            return [r for r in self.requests if path is None or r["path"] == path]


@pytest.fixture
def push():
    s = PushService()
    yield s
    s.stop()


@pytest.fixture
def notifd_factory(notifd_factory):
    yield from checked_exits(notifd_factory)


def webpush_yaml(**config):
    base = {"allow_insecure_endpoints": "true", "subject": "'mailto:ops@example.com'",
            "retry": "{max_attempts: 4, initial_interval: 50ms, max_interval: 200ms}",
            "timeout": "5s"}
    base.update(config)
    return "  - name: webpush\n    config:\n" + "".join(f"      {k}: {v}\n"
                                                       for k, v in base.items())


def seed(factory, **config):
    """Seed mode: ?user_id= decides, /push/send open."""
    return factory(plugins_yaml=webpush_yaml(**config), extra_yaml="auth: {mode: none}\n")


def subscribe(n, user, sub, headers=None):
    return http("POST", f"{n.url}/push/subscriptions?user_id={user}", sub, headers)


def endpoints(n, user, headers=None):
    st, body, _ = http("GET", f"{n.url}/push/subscriptions?user_id={user}", None, headers)
    assert st == 200, body
    return [s["endpoint"] for s in json.loads(body)["subscriptions"]]


def send(n, user, notification, headers=None):
    st, body, _ = http("POST", f"{n.url}/push/send", {"user_id": user,
                                                      "notification": notification}, headers)
    assert st == 202, body
    return json.loads(body)["subscriptions"]


def note(i, **extra):
    n = {"id": i, "notification_type": "purchase", "timestamp": "2024-05-01T10:00:00Z",
         "payload": {"order": f"o-{i}", "text": "Zoë <b>&</b> ✓"}}
    n.update(extra)
    return n


# ---- subscriptions -----------------------------------------------------------------

def test_subscribe_list_delete(notifd_factory, push):
    n = seed(notifd_factory)
    a, b = push.subscription("a"), push.subscription("b")
    for s in (a, b):
        st, body, _ = subscribe(n, "alice", s)
        assert st == 201, body
        assert json.loads(body) == {"endpoint": s["endpoint"]}
    # Again: an update, not a second row.
    assert subscribe(n, "alice", a)[0] == 201
    assert sorted(endpoints(n, "alice")) == sorted([a["endpoint"], b["endpoint"]])
    st, body, _ = http("DELETE", f"{n.url}/push/subscriptions?user_id=alice",
                       {"endpoint": a["endpoint"]})
    assert st == 204 and body == b""
    assert endpoints(n, "alice") == [b["endpoint"]]
    st, body, _ = http("DELETE", f"{n.url}/push/subscriptions?user_id=alice",
                       {"endpoint": a["endpoint"]})
    assert st == 404, body
    assert http("GET", f"{n.url}/push/subscriptions")[0] == 400  # no user in seed mode


def test_oldest_subscription_replaced_past_the_limit(notifd_factory, push):
    n = seed(notifd_factory, max_subscriptions_per_user=3)
    subs = [push.subscription(f"s{i}") for i in range(5)]
    for s in subs:
        assert subscribe(n, "alice", s)[0] == 201
    assert sorted(endpoints(n, "alice")) == sorted(s["endpoint"] for s in subs[2:])


def test_bad_subscriptions_refused_and_nothing_stored(notifd_factory, push):
    n = seed(notifd_factory)
    good = push.subscription("good")
    point = bytearray(unb64u(good["keys"]["p256dh"]))

    def with_keys(**keys):
        return dict(good, keys=dict(good["keys"], **keys))

    off_curve = bytearray(point)
    off_curve[-1] ^= 1
    compressed = bytes([2 + (point[-1] & 1)]) + bytes(point[1:33])
    bad = [
        with_keys(p256dh=b64u(bytes(off_curve))),            # not on the curve
        with_keys(p256dh=b64u(bytes(point[:64]))),           # 64 bytes
        with_keys(p256dh=b64u(compressed)),                  # compressed form
        with_keys(p256dh=b64u(b"\x04" + b"\0" * 64)),        # not a point
        with_keys(p256dh="not base64!"),
        with_keys(auth=b64u(os.urandom(15))),                # auth 15 bytes
        with_keys(auth=b64u(os.urandom(17))),
        {"endpoint": good["endpoint"], "keys": {"p256dh": good["keys"]["p256dh"]}},
        {"endpoint": good["endpoint"]},
        dict(good, endpoint="ftp://127.0.0.1/x"),
        dict(good, endpoint="https://user@push.example.net/x"),
        dict(good, endpoint="https://push.example.net/a b"),
        dict(good, endpoint=123),
        dict(good, expirationTime=1000),                     # expired in 1970
        dict(good, expirationTime="soon"),
        [good],
        "subscription",
    ]
    for b in bad:
        st, body, _ = subscribe(n, "alice", b)
        assert st == 400, (b, st, body)
        assert "error" in json.loads(body)
    st, body, _ = subscribe(n, "alice", b"{not json")
    assert st == 400, body
    # Over 4 KiB: refused before it is read.
    big = dict(good, padding="x" * 4200)
    st, body, _ = subscribe(n, "alice", big)
    assert st == 413, body
    assert endpoints(n, "alice") == []

    # Plain http endpoints only when the config allows them (default: no).
    strict = seed(notifd_factory, allow_insecure_endpoints="false")
    st, body, _ = subscribe(strict, "alice", good)
    assert st == 400 and b"https" in body, body
    assert endpoints(strict, "alice") == []


# ---- sending -----------------------------------------------------------------------

def test_send_is_encrypted_and_vapid_signed(notifd_factory, push):
    n = seed(notifd_factory)
    st, body, _ = http("GET", f"{n.url}/push/vapid-public-key")
    assert st == 200, body
    public_key = json.loads(body)["public_key"]
    assert len(unb64u(public_key)) == 65
    subs = [push.subscription("one"), push.subscription("two")]
    for s in subs:
        assert subscribe(n, "alice", s)[0] == 201
    notification = note(7)
    assert send(n, "alice", notification) == 2
    wait_until(lambda: len(push.calls()) == 2, what="two pushes")
    for r in push.calls():
        assert "error" not in r, r["error"]
        assert json.loads(r["plain"]) == notification
        assert r["k"] == public_key
        assert r["claims"]["sub"] == "mailto:ops@example.com"
    assert {r["path"] for r in push.calls()} == {"/push/one", "/push/two"}
    wait_until(lambda: metric(n, "webpush_sends_total", result="sent") == 2, what="sent metric")
    # Nobody subscribed: nothing to do.
    assert send(n, "nobody", note(8)) == 0


def test_large_notification_sent_as_truncated_stub(notifd_factory, push):
    n = seed(notifd_factory, max_payload=1024)
    assert subscribe(n, "alice", push.subscription("big"))[0] == 201
    assert send(n, "alice", note(9, payload={"text": "y" * 5000})) == 1
    wait_until(lambda: len(push.calls()) == 1, what="the push")
    r = push.calls()[0]
    assert "error" not in r, r["error"]
    assert json.loads(r["plain"]) == {"id": 9, "notification_type": "purchase", "truncated": True}


def test_bad_send_bodies(notifd_factory):
    n = seed(notifd_factory)
    for b in ({"user_id": "alice"}, {"notification": {}}, {"user_id": "", "notification": {}},
              {"user_id": "alice", "notification": "x"}, [1]):
        st, body, _ = http("POST", f"{n.url}/push/send", b)
        assert st == 400, (b, body)


@pytest.mark.parametrize("status", [410, 404])
def test_gone_removes_the_subscription(notifd_factory, push, status):
    n = seed(notifd_factory)
    gone, kept = push.subscription("gone"), push.subscription("kept")
    for s in (gone, kept):
        assert subscribe(n, "alice", s)[0] == 201
    push.answers["/push/gone"] = [status]
    assert send(n, "alice", note(1)) == 2
    wait_until(lambda: endpoints(n, "alice") == [kept["endpoint"]], what="the removal")
    assert metric(n, "webpush_sends_total", result="gone") == 1
    assert send(n, "alice", note(2)) == 1
    wait_until(lambda: len(push.calls("/push/kept")) == 2, what="the second push")
    assert len(push.calls("/push/gone")) == 1
    assert metric(n, "webpush_sends_total", result="retried") == 0


def test_server_error_retried_then_delivered_once(notifd_factory, push):
    n = seed(notifd_factory)
    s = push.subscription("flaky")
    assert subscribe(n, "alice", s)[0] == 201
    push.answers["/push/flaky"] = [500, 503]
    notification = note(3)
    assert send(n, "alice", notification) == 1
    wait_until(lambda: metric(n, "webpush_sends_total", result="sent") == 1, what="delivery")
    assert metric(n, "webpush_sends_total", result="retried") == 2
    assert metric(n, "webpush_pending_deliveries") == 0
    calls = push.calls("/push/flaky")
    assert [c["status"] for c in calls] == [500, 503, 201]
    assert all(json.loads(c["plain"]) == notification for c in calls)
    assert endpoints(n, "alice") == [s["endpoint"]]


def test_retries_run_out_and_permanent_errors_drop(notifd_factory, push):
    n = seed(notifd_factory)
    down, refused = push.subscription("down"), push.subscription("refused")
    for s in (down, refused):
        assert subscribe(n, "alice", s)[0] == 201
    push.answers["/push/down"] = [502] * 10
    push.answers["/push/refused"] = [403]
    assert send(n, "alice", note(4)) == 2
    wait_until(lambda: metric(n, "webpush_sends_total", result="failed") == 2, what="two failures")
    assert len(push.calls("/push/down")) == 4  # retry.max_attempts
    assert len(push.calls("/push/refused")) == 1
    # Failures keep the subscription (only 404/410 remove it).
    assert len(endpoints(n, "alice")) == 2
    # A push service that is not there at all: transport errors, retried.
    closed = push.subscription("closed")
    closed["endpoint"] = f"http://127.0.0.1:{free_port()}/push/closed"
    assert subscribe(n, "bob", closed)[0] == 201
    assert send(n, "bob", note(5)) == 1
    wait_until(lambda: metric(n, "webpush_sends_total", result="failed") == 3, what="3rd failure")


def test_per_user_isolation(notifd_factory, push):
    n = seed(notifd_factory)
    a = push.subscription("alice")
    assert subscribe(n, "alice", a)[0] == 201
    assert endpoints(n, "bob") == []
    st, _, _ = http("DELETE", f"{n.url}/push/subscriptions?user_id=bob", {"endpoint": a["endpoint"]})
    assert st == 404
    assert endpoints(n, "alice") == [a["endpoint"]]
    assert send(n, "bob", note(6)) == 0


def bearer(sub):
    return {"Authorization": "Bearer " + jwt.encode({"sub": sub, "exp": int(time.time()) + 300},
                                                    JWT_SECRET, algorithm="HS256")}


def test_token_auth_users_mode(notifd_factory, push):
    n = notifd_factory(plugins_yaml=webpush_yaml(),
                       extra_yaml=f"auth: {{mode: users, jwt_secret: {JWT_SECRET}, "
                                  f"internal_token: {INTERNAL}}}\n")
    a = push.subscription("tok-alice")
    url = f"{n.url}/push/subscriptions"
    assert http("POST", url, a)[0] == 401
    assert http("POST", url, a, bearer("alice"))[0] == 201
    # The user is the token's subject; a different user_id is refused.
    assert http("POST", url + "?user_id=bob", a, bearer("alice"))[0] == 403
    assert http("GET", url + "?user_id=alice", None, bearer("alice"))[0] == 200
    assert endpoints(n, "bob", bearer("bob")) == []
    assert http("DELETE", url, {"endpoint": a["endpoint"]}, bearer("bob"))[0] == 404
    st, body, _ = http("GET", url, None, bearer("alice"))
    assert [s["endpoint"] for s in json.loads(body)["subscriptions"]] == [a["endpoint"]]
    # The key is public; sending is for services only.
    assert http("GET", f"{n.url}/push/vapid-public-key")[0] == 200
    msg = {"user_id": "alice", "notification": note(10)}
    assert http("POST", f"{n.url}/push/send", msg)[0] == 401
    assert http("POST", f"{n.url}/push/send", msg, bearer("alice"))[0] == 401
    st, body, _ = http("POST", f"{n.url}/push/send", msg, {"X-Notifd-Internal-Token": INTERNAL})
    assert st == 202 and json.loads(body) == {"subscriptions": 1}
    wait_until(lambda: len(push.calls()) == 1, what="the push")
    assert json.loads(push.calls()[0]["plain"]) == note(10)


def test_vapid_key_kept_across_restart(notifd_factory, push):
    n = seed(notifd_factory)
    key1 = json.loads(http("GET", f"{n.url}/push/vapid-public-key")[1])["public_key"]
    pem = os.path.join(n.data_dir, "vapid.pem")
    assert stat.S_IMODE(os.stat(pem).st_mode) == 0o600
    s = push.subscription("r")
    assert subscribe(n, "alice", s)[0] == 201
    assert n.stop() == 0
    n.start()
    key2 = json.loads(http("GET", f"{n.url}/push/vapid-public-key")[1])["public_key"]
    assert key1 == key2
    assert endpoints(n, "alice") == [s["endpoint"]]
    assert send(n, "alice", note(11)) == 1
    wait_until(lambda: len(push.calls()) == 1, what="the push")
    assert push.calls()[0]["k"] == key1 and "error" not in push.calls()[0]


def test_configured_raw_vapid_key(notifd_factory, push):
    key = ec.generate_private_key(ec.SECP256R1())
    raw = key.private_numbers().private_value.to_bytes(32, "big")
    want = b64u(key.public_key().public_bytes(serialization.Encoding.X962,
                                              serialization.PublicFormat.UncompressedPoint))
    n = seed(notifd_factory, vapid_private_key=b64u(raw))
    got = json.loads(http("GET", f"{n.url}/push/vapid-public-key")[1])["public_key"]
    assert got == want
    assert not os.path.exists(os.path.join(n.data_dir, "vapid.pem"))


def test_sigterm_with_a_retry_waiting(notifd_factory, push):
    """A delivery waiting on its retry timer at shutdown is dropped: the
    daemon exits 0 at once, with nothing leaked (checked_exits, ASan)."""
    n = seed(notifd_factory, retry="{max_attempts: 5, initial_interval: 30s, max_interval: 60s}")
    assert subscribe(n, "alice", push.subscription("slow"))[0] == 201
    push.answers["/push/slow"] = [503]
    assert send(n, "alice", note(12)) == 1
    wait_until(lambda: metric(n, "webpush_sends_total", result="retried") == 1, what="a retry")
    assert metric(n, "webpush_pending_deliveries") == 1
    t0 = time.time()
    assert n.stop() == 0
    assert time.time() - t0 < 5
    assert "1 push deliveries unfinished" in n.read_log()


# ---- the notification event stream ---------------------------------------------------

EVENTS = "notification-events"


def produce_event(n, value, key=None, headers=None, topic=EVENTS):
    """One record onto the embedded bus, as notifications_ws produces it:
    key = the user, value = the event JSON, notifd-* headers."""
    args = [NOTIFD, "bus", "produce", "-d", n.data_dir]
    if key is not None:
        args += ["-k", key]
    for name, val in (headers or {}).items():
        args += ["-H", f"{name}={val}"]
    args += [topic, value if isinstance(value, str) else json.dumps(value)]
    r = subprocess.run(args, capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr.decode()


def event_text(i, user="alice", payload='{"order":"o-%d","amount":1e+21,"text":"Zo\\u00eb ✓"}'):
    """The event's exact bytes, in the documented field order; the payload
    keeps its producer's number and escape spelling."""
    return ('{"id":%d,"user_id":%s,"notification_type":"purchase_notification",'
            '"timestamp":"2026-12-07T21:00:00.123456789Z","payload":%s}'
            % (i, json.dumps(user), payload.replace("%d", str(i)) if "%d" in payload else payload))


def plaintext(i, payload='{"order":"o-%d","amount":1e+21,"text":"Zo\\u00eb ✓"}'):
    """What the push carries for event_text(i): the websocket frame with id."""
    p = payload.replace("%d", str(i)) if "%d" in payload else payload
    return ('{"id":%d,"notification_type":"purchase_notification",'
            '"timestamp":"2026-12-07T21:00:00.123456789Z","payload":%s}' % (i, p)).encode()


def events_metric(n, result):
    return metric(n, "webpush_events_total", result=result)


def test_event_is_pushed_with_the_notification_bytes(notifd_factory, push):
    n = seed(notifd_factory)
    subs = [push.subscription("ev-one"), push.subscription("ev-two")]
    for s in subs:
        assert subscribe(n, "alice", s)[0] == 201
    # notifd-delivered absent (unknown) and "0" both push.
    produce_event(n, event_text(41), key="alice")
    produce_event(n, event_text(42), key="alice", headers={"notifd-delivered": "0"})
    wait_until(lambda: len(push.calls()) == 4, what="four pushes")
    for r in push.calls():
        assert "error" not in r, r["error"]
    got = sorted((r["path"], r["plain"]) for r in push.calls())
    assert got == sorted((p, plaintext(i)) for p in ("/push/ev-one", "/push/ev-two")
                         for i in (41, 42))
    wait_until(lambda: events_metric(n, "pushed") == 2, what="pushed metric")
    wait_until(lambda: metric(n, "webpush_sends_total", result="sent") == 4, what="sent metric")
    # A user with no subscription: acked, counted, nothing sent.
    produce_event(n, event_text(43, user="nobody"), key="nobody")
    wait_until(lambda: events_metric(n, "no_subscriptions") == 1, what="no_subscriptions")
    assert len(push.calls()) == 4


def test_user_without_subscriptions_is_remembered_until_one_is_stored(notifd_factory, push):
    """A user a lookup found without a subscription is remembered for a
    while (events skip the store: no job per notification on a busy node),
    and forgotten the moment a subscription is stored."""
    n = seed(notifd_factory)
    for i in range(1, 21):
        produce_event(n, event_text(i, user="carol"), key="carol")
    wait_until(lambda: events_metric(n, "no_subscriptions") == 20, what="20 events counted")
    assert subscribe(n, "carol", push.subscription("carol"))[0] == 201
    produce_event(n, event_text(21, user="carol"), key="carol")
    wait_until(lambda: len(push.calls()) == 1, what="the push right after subscribing")
    assert push.calls()[0]["plain"] == plaintext(21)
    assert events_metric(n, "pushed") == 1


def test_delivered_muted_and_quiet_events_are_not_pushed(notifd_factory, push):
    n = seed(notifd_factory)
    assert subscribe(n, "alice", push.subscription("ev-skip"))[0] == 201
    skipped = [
        (1, {"notifd-delivered": "1"}),
        (2, {"notifd-delivered": "3", "notifd-muted": ""}),
        (3, {"notifd-muted": "push"}),
        (4, {"notifd-muted": "email, push"}),
        (5, {"notifd-quiet": "1"}),
        (6, {"notifd-quiet": "1", "notifd-delivered": "0"}),
    ]
    pushed = [
        (7, {"notifd-muted": "email,webhook"}),   # other channels muted
        (8, {"notifd-muted": "pushy"}),           # not the same name
        (9, {"notifd-quiet": "0", "notifd-delivered": "0"}),
    ]
    for i, headers in skipped + pushed:
        produce_event(n, event_text(i), key="alice", headers=headers)
    # Every event is decided (and counted) before its pushes start.
    wait_until(lambda: sum(events_metric(n, r) for r in ("delivered", "muted", "quiet", "pushed"))
               == len(skipped) + len(pushed), what="every event handled")
    wait_until(lambda: len(push.calls()) == len(pushed), what="the pushes")
    assert sorted(r["plain"] for r in push.calls()) == sorted(plaintext(i) for i, _ in pushed)
    assert events_metric(n, "delivered") == 2
    assert events_metric(n, "muted") == 2
    assert events_metric(n, "quiet") == 2
    assert events_metric(n, "pushed") == 3


def test_redelivered_event_is_pushed_once(notifd_factory, push):
    n = seed(notifd_factory)
    assert subscribe(n, "alice", push.subscription("ev-dup"))[0] == 201
    assert subscribe(n, "bob", push.subscription("ev-dup-bob"))[0] == 201
    for _ in range(3):
        produce_event(n, event_text(77), key="alice")
    # The same id for another user is another notification.
    produce_event(n, event_text(77, user="bob"), key="bob")
    produce_event(n, event_text(78), key="alice")
    wait_until(lambda: events_metric(n, "duplicate") + events_metric(n, "pushed") == 5,
               what="every event handled")
    wait_until(lambda: len(push.calls()) == 3, what="the pushes")
    assert sorted(r["plain"] for r in push.calls("/push/ev-dup")) == [plaintext(77), plaintext(78)]
    assert [r["plain"] for r in push.calls("/push/ev-dup-bob")] == [plaintext(77)]
    assert events_metric(n, "duplicate") == 2
    assert events_metric(n, "pushed") == 3


def tail(n, topic, count, idle="8s"):
    r = subprocess.run([NOTIFD, "bus", "tail", "-d", n.data_dir, "-B", "-f", "-n", str(count), "-t", idle,
                        topic], capture_output=True, timeout=60)
    return [json.loads(line) for line in r.stdout.decode().splitlines() if line.strip()]


def test_invalid_events_are_dead_lettered_with_the_reason(notifd_factory, push):
    n = seed(notifd_factory)
    assert subscribe(n, "alice", push.subscription("ev-bad"))[0] == 201
    good = json.loads(event_text(5))
    bad = [
        ("{not json", "not a JSON object"),
        ("[1,2]", "not a JSON object"),
        (dict(good, id="5"), "id must be a positive integer"),
        (dict(good, id=0), "id must be a positive integer"),
        (dict(good, id=1.5), "id must be a positive integer"),
        ({k: v for k, v in good.items() if k != "user_id"}, "user_id"),
        (dict(good, user_id=""), "user_id"),
        (dict(good, notification_type=7), "notification_type"),
        (dict(good, timestamp=None), "timestamp"),
        ({k: v for k, v in good.items() if k != "payload"}, "payload"),
    ]
    for value, _ in bad:
        produce_event(n, value, key="alice")
    produce_event(n, event_text(6), key="alice")
    wait_until(lambda: len(push.calls()) == 1, what="the valid event's push")
    assert push.calls()[0]["plain"] == plaintext(6)
    assert events_metric(n, "invalid") == len(bad)
    dead = tail(n, EVENTS + ".dlq", len(bad))
    assert len(dead) == len(bad)
    for rec, (_, why) in zip(dead, bad):
        assert why in rec["headers"]["notifd-error"], rec["headers"]
        assert rec["headers"]["notifd-original-topic"] == EVENTS


def test_events_topic_can_be_turned_off(notifd_factory, push):
    n = seed(notifd_factory, events_topic='""')
    assert subscribe(n, "alice", push.subscription("ev-off"))[0] == 201
    produce_event(n, event_text(1), key="alice")
    # /push/send still works; the event never arrives.
    assert send(n, "alice", note(2)) == 1
    wait_until(lambda: len(push.calls()) == 1, what="the /push/send push")
    time.sleep(0.5)
    assert len(push.calls()) == 1 and json.loads(push.calls()[0]["plain"]) == note(2)
    assert events_metric(n, "pushed") == 0
    assert "events=(off)" in n.read_log()


def _ws_has_events():
    with open(os.path.join(SOURCE, "plugins", "notifications_ws", "README.md")) as f:
        return "events_topic" in f.read()


@pytest.mark.skipif(not _ws_has_events(), reason="needs the events branch")
def test_notification_posted_to_notifications_ws_is_pushed(notifd_factory, push):
    """End to end on one node: notifications_ws stores a notification for a
    user with no socket and publishes the event; webpush pushes it."""
    n = notifd_factory(plugins_yaml=plugin_yaml("notifications_ws") + webpush_yaml(),
                       extra_yaml="auth: {mode: none}\n")
    assert subscribe(n, "alice", push.subscription("e2e"))[0] == 201
    payload = {"order_id": "o-1", "buyer_id": "b", "shop_owner_id": "s", "product_name": "Tea",
               "amount": 12.5, "currency": "EUR", "status": "confirmed",
               "purchased_at": "2025-01-02T03:04:05+07:00"}
    st, body, _ = http("POST", f"{n.url}/notifications/purchase?user_id=alice", payload)
    assert st == 200, body
    wait_until(lambda: len(push.calls()) == 1, what="the push")
    r = push.calls()[0]
    assert "error" not in r, r["error"]
    got = json.loads(r["plain"])
    st, body, _ = http("GET", f"{n.url}/notifications?user_id=alice")
    stored = json.loads(body)["notifications"][0]
    assert got == {k: stored[k] for k in ("id", "notification_type", "timestamp", "payload")}
    assert list(got) == ["id", "notification_type", "timestamp", "payload"]
    assert got["payload"]["order_id"] == "o-1"
    # Preferences turning push off for the type: stored, not pushed.
    st, body, _ = http("PUT", f"{n.url}/users/alice/preferences",
                       {"channels": {"purchase": {"push": False}}})
    assert st == 200, body
    assert http("POST", f"{n.url}/notifications/purchase?user_id=alice", payload)[0] == 200
    wait_until(lambda: events_metric(n, "muted") == 1, what="the muted event")
    assert len(push.calls()) == 1


# ---- the MongoDB store ---------------------------------------------------------------

@pytest.fixture(scope="module")
def ferretdb():
    """FerretDB v1 (MongoDB wire protocol), started and stopped by pid by
    tests/services/ferretdb.sh (built on first use)."""
    import shutil
    import tempfile
    script = os.path.join(SOURCE, "tests", "services", "ferretdb.sh")
    d = tempfile.mkdtemp(prefix="notifd-webpush-ferretdb-")
    try:
        r = subprocess.run([script, "start", d], capture_output=True, text=True, timeout=900)
        if r.returncode != 0:
            pytest.skip("SKIPPED: ferretdb: " + (r.stderr.strip()[-300:] or
                                                  f"ferretdb.sh exited {r.returncode}"))
        yield r.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run([script, "stop", d], capture_output=True, timeout=60)
        shutil.rmtree(d, ignore_errors=True)


def mongo_node(factory, uri, db, **config):
    return factory(plugins_yaml=webpush_yaml(**config),
                   extra_yaml=f"auth: {{mode: none}}\nbackends:\n  mongodb: "
                              f"{{uri: \"{uri}\", database: {db}}}\n")


def test_mongodb_store(notifd_factory, push, ferretdb):
    db = "wp" + os.urandom(4).hex()
    n = mongo_node(notifd_factory, ferretdb, db, max_subscriptions_per_user=3)
    wait_until(lambda: "subscription store mongodb ready" in n.read_log(), what="the indexes")
    assert f"store=mongodb {db}.push_subscriptions" in n.read_log()
    a, b = push.subscription("m-a"), push.subscription("m-b")
    for s in (a, b):
        assert subscribe(n, "alice", s)[0] == 201
    assert subscribe(n, "alice", a)[0] == 201   # an update: a is now the newest
    assert endpoints(n, "alice") == [a["endpoint"], b["endpoint"]]
    assert endpoints(n, "bob") == []
    st, _, _ = http("DELETE", f"{n.url}/push/subscriptions?user_id=bob", {"endpoint": a["endpoint"]})
    assert st == 404
    # Past the limit the oldest goes.
    more = [push.subscription(f"m-{i}") for i in range(3)]
    for s in more:
        assert subscribe(n, "alice", s)[0] == 201
    assert endpoints(n, "alice") == [s["endpoint"] for s in reversed(more)]
    # An event pushes to each; 410 removes that subscription.
    push.answers["/push/m-0"] = [410]
    produce_event(n, event_text(3), key="alice")
    wait_until(lambda: len(push.calls()) == 3, what="three pushes")
    assert all(r["plain"] == plaintext(3) and "error" not in r for r in push.calls())
    wait_until(lambda: endpoints(n, "alice") == [more[2]["endpoint"], more[1]["endpoint"]],
               what="the removal")
    st, body, _ = http("DELETE", f"{n.url}/push/subscriptions?user_id=alice",
                       {"endpoint": more[1]["endpoint"]})
    assert st == 204, body
    # Another process on the same database sees the same subscriptions.
    assert n.stop() == 0
    other = mongo_node(notifd_factory, ferretdb, db)
    assert endpoints(other, "alice") == [more[2]["endpoint"]]
    # Its indexes were there already: still ready (FerretDB v1 fails on
    # several existing indexes in one createIndexes).
    wait_until(lambda: other.read_log().count("subscription store mongodb ready") == 2,
               what="the second start's indexes")
    assert "setup failed" not in other.read_log()
    assert not os.path.exists(os.path.join(other.data_dir, "webpush.db"))


# ---- config/distributed/webpush.yaml: Kafka + MongoDB, two instances --------------

from test_chat_distributed import kafka  # noqa: E402,F401  (module fixture: a real broker)

DISTRIBUTED = os.path.join(SOURCE, "config", "distributed", "webpush.yaml")


def kafka_event(brokers, topic, value, key, headers=None):
    args = [NOTIFD, "bus", "produce", "-b", brokers, "-k", key]
    for name, val in (headers or {}).items():
        args += ["-H", f"{name}={val}"]
    r = subprocess.run(args + [topic, value], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()


def distributed_node(factory, name, env):
    """notifd on the shipped config, with the environment docs/operations.md
    lists."""
    n = factory(name=name, start=False)
    n.config_path = DISTRIBUTED
    n.env.update(env, NOTIFD_LISTEN_ADDRESS="127.0.0.1", NOTIFD_PORT=str(n.port),
                 NOTIFD_ADMIN_PORT=str(n.admin_port), NOTIFD_DATA_DIR=n.data_dir,
                 NOTIFD_PLUGIN_DIR=os.path.join(os.path.dirname(os.path.dirname(NOTIFD)),
                                                "plugins"))
    return n.start(timeout=30)


def test_distributed_config_on_kafka_and_mongodb(notifd_factory, push, kafka, ferretdb):  # noqa: F811
    tag = os.urandom(4).hex()
    topic = f"events-{tag}"
    key = ec.generate_private_key(ec.SECP256R1())
    env = {"NOTIFD_KAFKA_BROKERS": kafka, "NOTIFD_MONGODB_URI": ferretdb,
           "NOTIFD_MONGODB_DATABASE": f"wp{tag}", "NOTIFD_INTERNAL_TOKEN": INTERNAL,
           "NOTIFD_AUTH_MODE": "none", "NOTIFD_PUSH_ALLOW_HTTP": "true",
           "NOTIFD_EVENTS_TOPIC": topic, "NOTIFD_WEBPUSH_GROUP": f"webpush-{tag}",
           "NOTIFD_VAPID_PRIVATE_KEY": b64u(key.private_numbers().private_value.to_bytes(32, "big"))}
    # The topic exists before the consumers subscribe (docs/operations.md).
    kafka_event(kafka, topic, "{}", "warm-up")
    nodes = [distributed_node(notifd_factory, f"wp{i}", env) for i in (1, 2)]
    try:
        # One key shared by the instances; subscriptions shared through MongoDB.
        keys = {json.loads(http("GET", f"{n.url}/push/vapid-public-key")[1])["public_key"]
                for n in nodes}
        assert len(keys) == 1
        sub = push.subscription("dist")
        assert subscribe(nodes[0], "alice", sub)[0] == 201
        assert endpoints(nodes[1], "alice") == [sub["endpoint"]]

        # A new group starts at the end: warm-up events until both instances
        # have their partitions and have handled one.
        warm = iter(range(1, 100000))

        def both_ready():
            for i in range(8):
                kafka_event(kafka, topic, event_text(next(warm), user=f"warm-{i}"), f"warm-{i}")
            return all(events_metric(n, "no_subscriptions") >= 1 for n in nodes)
        wait_until(both_ready, timeout=90, what="both instances consuming")

        # One event (twice, as a redelivery would): pushed once, by one instance.
        for _ in range(2):
            kafka_event(kafka, topic, event_text(500), "alice")
        kafka_event(kafka, topic, event_text(501), "alice", {"notifd-delivered": "1"})
        kafka_event(kafka, topic, event_text(502), "alice", {"notifd-muted": "push"})
        kafka_event(kafka, topic, event_text(503), "alice", {"notifd-delivered": "0"})
        wait_until(lambda: sum(events_metric(n, r) for n in nodes
                               for r in ("pushed", "duplicate", "delivered", "muted")) == 5,
                   timeout=30, what="the five events handled")
        wait_until(lambda: len(push.calls()) == 2, what="two pushes")
        assert sorted(r["plain"] for r in push.calls()) == [plaintext(500), plaintext(503)]
        assert all("error" not in r and r["k"] in keys for r in push.calls())
        assert sum(events_metric(n, "duplicate") for n in nodes) == 1
    finally:
        for n in nodes:
            rc = n.stop()
            log = n.read_log()
            assert rc == 0 and not any(m in log for m in SANITIZER_MARKS), log[-3000:]
            assert "setup failed" not in log, log[-3000:]


def test_store_mongodb_without_a_backend_is_a_config_error(notifd_factory):
    n = notifd_factory(plugins_yaml=webpush_yaml(store="mongodb"),
                       extra_yaml="auth: {mode: none}\n", start=False)
    with pytest.raises(RuntimeError) as e:
        n.start()
    assert "mongodb needs backends.mongodb.uri" in str(e.value)
