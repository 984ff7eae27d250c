"""Users are first-class: the shipped single-node config (auth.mode users,
built-in accounts, open registration) run as a user would run it.

Covers: anonymous persist, history, both subscriptions and the service
POSTs refused; register (201, 409 taken, 400 invalid, 403 when closed),
login (200 token, 401 wrong password / unknown user), refresh and /auth/me;
the stored password hash checked by an independent Argon2 implementation
(argon2-cffi) and the token by PyJWT; two registered users chat with
tokens (both chat sockets and the receiver's notification socket); a third
user can neither read nor subscribe to their conversation nor to their
notifications, nor post as them; `notifd user add|passwd|del|list`.
"""
import asyncio
import json
import os
import subprocess

import jwt
import pytest
import websockets
from argon2 import PasswordHasher
from argon2.exceptions import VerifyMismatchError

from conftest import (NOTIFD, SOURCE, checked_exits, free_port, http, run, stream_id,
                      wait_until)

SINGLE_NODE = os.path.join(SOURCE, "config", "single-node.yaml")


class SingleNode:
    """notifd with config/single-node.yaml and its documented environment."""

    def __init__(self, tmp_path, **env):
        self.port, self.admin_port = free_port(), free_port()
        self.data_dir = str(tmp_path / "data")
        self.log_path = str(tmp_path / "notifd.log")
        build = os.path.dirname(os.path.dirname(NOTIFD))
        self.env = dict(os.environ, NOTIFD_ADDRESS="127.0.0.1", NOTIFD_PORT=str(self.port),
                        NOTIFD_ADMIN_PORT=str(self.admin_port), NOTIFD_DATA_DIR=self.data_dir,
                        NOTIFD_PLUGIN_DIR=os.path.join(build, "plugins"),
                        NOTIFD_WEB_DIR=os.path.join(SOURCE, "web"),
                        NOTIFD_TEMPLATES_DIR=os.path.join(SOURCE, "config", "templates"),
                        NOTIFD_SMTP_URL=f"smtp://127.0.0.1:{free_port()}", **env)
        self.proc = None

    url = property(lambda self: f"http://127.0.0.1:{self.port}")
    ws_url = property(lambda self: f"ws://127.0.0.1:{self.port}")
    config = SINGLE_NODE  # a subclass may run a changed copy

    def start(self):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([NOTIFD, "-c", self.config], stdout=self.log,
                                     stderr=subprocess.STDOUT, env=self.env)
        wait_until(lambda: self._ready(), 30, "notifd /readyz")
        return self

    def _ready(self):
        assert self.proc.poll() is None, self.read_log()
        try:
            return http("GET", f"http://127.0.0.1:{self.admin_port}/readyz", timeout=1)[0] == 200
        except OSError:
            return False

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.terminate()
        rc = self.proc.wait(timeout=20)
        self.log.close()
        return rc


@pytest.fixture
def single_node(tmp_path):
    nodes = []

    def make(**env):
        n = SingleNode(tmp_path / f"n{len(nodes)}", **env)
        os.makedirs(tmp_path / f"n{len(nodes)}", exist_ok=True)
        nodes.append(n)
        return n.start()

    yield from checked_exits(make)


def post(n, path, body, token=None, headers=None):
    h = dict(headers or {})
    if token:
        h["Authorization"] = f"Bearer {token}"
    st, raw, hdrs = http("POST", n.url + path, body, h)
    return st, (json.loads(raw) if raw else None)


def get(n, path, token=None):
    h = {"Authorization": f"Bearer {token}"} if token else {}
    st, raw, _ = http("GET", n.url + path, None, h)
    return st, (json.loads(raw) if raw else None)


def register(n, user, password="correct horse"):
    return post(n, "/auth/register", {"user_id": user, "password": password})


def login(n, user, password="correct horse"):
    st, body = post(n, "/auth/login", {"user_id": user, "password": password})
    assert st == 200, body
    return body["token"]


def chat(sender, receiver, content="hi"):
    return {"content": content, "stream_id": stream_id(sender, receiver), "sender_id": sender,
            "receiver_id": receiver}


async def upgrade_status(url):
    try:
        async with websockets.connect(url, open_timeout=10):
            return 101
    except websockets.exceptions.InvalidStatusCode as e:
        return e.status_code


def test_anonymous_clients_are_refused(single_node):
    n = single_node()
    a, b = "alice", "bob"
    sid = stream_id(a, b)
    assert post(n, "/chat/messages", chat(a, b))[0] == 401
    assert post(n, "/chat/persist", chat(a, b))[0] == 401
    assert get(n, f"/chat/streams/{sid}/messages?peer_id={b}")[0] == 401
    assert post(n, f"/notifications/payment-reminder?user_id={b}",
                {"amount": 10, "due_date": "2026-12-31T00:00:00Z"})[0] == 401
    assert post(n, "/chat/forward-to-websocket", chat(a, b))[0] == 401
    assert post(n, f"/chat/streams/{sid}/close", {})[0] == 401
    q = f"stream_id={sid}&sender_id={a}&receiver_id={b}"
    assert run(upgrade_status(f"{n.ws_url}/chat/subscribe-websocket?{q}")) == 401
    assert run(upgrade_status(f"{n.ws_url}/notifications/subscribe?user_id={b}")) == 401
    # What stays public: health and the web client.
    assert http("GET", n.url + "/healthz")[0] == 200
    assert http("GET", n.url + "/")[0] == 200


def test_register_login_refresh(single_node):
    n = single_node()
    assert register(n, "alice") == (201, {"user_id": "alice"})
    assert register(n, "alice", "another password")[0] == 409
    assert register(n, "no spaces allowed")[0] == 400
    assert register(n, "x" * 65)[0] == 400
    assert register(n, "bob", "short")[0] == 400
    assert post(n, "/auth/register", {"user_id": "bob"})[0] == 400
    assert post(n, "/auth/register", b"{not json")[0] == 400

    assert post(n, "/auth/login", {"user_id": "alice", "password": "wrong horse"})[0] == 401
    assert post(n, "/auth/login", {"user_id": "nobody", "password": "correct horse"})[0] == 401
    st, body = post(n, "/auth/login", {"user_id": "alice", "password": "correct horse"})
    assert st == 200 and body["user_id"] == "alice" and body["expires_in"] == 3600
    assert body["expires_at"].endswith("Z")

    # The token is a standard HS256 JWT: PyJWT verifies it with the secret
    # the node generated into its data dir.
    secret_path = os.path.join(n.data_dir, "auth.secret")
    assert os.stat(secret_path).st_mode & 0o777 == 0o600
    secret = open(secret_path).read().strip()
    claims = jwt.decode(body["token"], secret, algorithms=["HS256"])
    assert claims["sub"] == "alice"
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(body["token"], "not-the-secret", algorithms=["HS256"])

    assert get(n, "/auth/me", body["token"]) == (200, {"user_id": "alice"})
    assert get(n, "/auth/me")[0] == 401
    assert get(n, "/auth/me", body["token"][:-2] + "xx")[0] == 401
    st, again = post(n, "/auth/refresh", {}, body["token"])
    assert st == 200 and again["user_id"] == "alice"
    assert jwt.decode(again["token"], secret, algorithms=["HS256"])["sub"] == "alice"
    assert post(n, "/auth/refresh", {})[0] == 401


def test_password_hash_is_argon2id_checked_by_an_independent_library(single_node):
    n = single_node()
    assert register(n, "alice", "correct horse battery")[0] == 201
    import sqlite3
    db = sqlite3.connect(os.path.join(n.data_dir, "users.db"))
    (stored,) = db.execute("SELECT password_hash FROM users WHERE user_id='alice'").fetchone()
    db.close()
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$"), stored
    assert "correct horse" not in stored
    ph = PasswordHasher()
    assert ph.verify(stored, "correct horse battery")
    with pytest.raises(VerifyMismatchError):
        ph.verify(stored, "correct horse batterY")
    assert os.stat(os.path.join(n.data_dir, "users.db")).st_mode & 0o077 == 0


def test_closed_registration(single_node):
    n = single_node(NOTIFD_REGISTRATION="closed")
    st, body = register(n, "alice")
    assert st == 403 and "closed" in body["error"]
    # An operator adds the account instead; the running daemon sees it.
    out = subprocess.run([NOTIFD, "user", "add", "alice", "-d", n.data_dir],
                         input=b"correct horse\n", capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert login(n, "alice")


def test_two_users_chat_and_a_third_is_kept_out(single_node):
    n = single_node()
    for u in ("alice", "bob", "mallory"):
        assert register(n, u)[0] == 201
    ta, tb, tm = login(n, "alice"), login(n, "bob"), login(n, "mallory")
    sid = stream_id("alice", "bob")

    async def scenario():
        q = f"stream_id={sid}&sender_id=alice&receiver_id=bob"
        async with websockets.connect(f"{n.ws_url}/chat/subscribe-websocket?{q}&token={ta}",
                                      open_timeout=10) as wa, \
                websockets.connect(f"{n.ws_url}/chat/subscribe-websocket?{q}&token={tb}",
                                   open_timeout=10) as wb, \
                websockets.connect(f"{n.ws_url}/notifications/subscribe?user_id=bob&token={tb}",
                                   open_timeout=10) as nb:
            loop = asyncio.get_running_loop()
            st, body = await loop.run_in_executor(
                None, lambda: post(n, "/chat/messages", chat("alice", "bob", "hello bob"), ta))
            assert st == 201, body
            for ws in (wa, wb):
                frame = json.loads(await asyncio.wait_for(ws.recv(), 15))
                assert frame["content"] == "hello bob" and frame["sender_id"] == "alice"
            note = json.loads(await asyncio.wait_for(nb.recv(), 15))
            assert note["notification_type"] == "chat_notification"
            assert note["payload"]["content"] == "hello bob"
            st, body = await loop.run_in_executor(
                None, lambda: post(n, "/chat/messages", chat("bob", "alice", "hi alice"), tb))
            assert st == 201, body
            for ws in (wa, wb):
                assert json.loads(await asyncio.wait_for(ws.recv(), 15))["content"] == "hi alice"

        # mallory: not a participant of alice<->bob, not bob.
        q_as_alice = f"stream_id={sid}&sender_id=alice&receiver_id=bob&token={tm}"
        assert await upgrade_status(f"{n.ws_url}/chat/subscribe-websocket?{q_as_alice}") == 403
        q_mix = f"stream_id={sid}&sender_id=mallory&receiver_id=bob&token={tm}"
        assert await upgrade_status(f"{n.ws_url}/chat/subscribe-websocket?{q_mix}") == 400
        assert await upgrade_status(
            f"{n.ws_url}/notifications/subscribe?user_id=bob&token={tm}") == 403

    run(scenario(), timeout=90)
    st, hist = get(n, f"/chat/streams/{sid}/messages?peer_id=bob", ta)
    assert st == 200 and [m["content"] for m in hist["messages"]] == ["hi alice", "hello bob"]
    assert get(n, f"/chat/streams/{sid}/messages?peer_id=bob", tm)[0] == 403
    assert get(n, f"/chat/streams/{sid}/messages?peer_id=alice", tm)[0] == 403
    msg_id = hist["messages"][0]["message_id"]
    assert get(n, f"/chat/messages/{msg_id}", tb)[0] == 200
    assert get(n, f"/chat/messages/{msg_id}", tm)[0] in (403, 404)
    # Posting as someone else, or into their stream.
    assert post(n, "/chat/messages", chat("alice", "bob", "fake"), tm)[0] == 403
    assert post(n, "/notifications/purchase?user_id=bob", {"order_id": "1"}, tm)[0] == 401


def test_user_command(tmp_path):
    d = str(tmp_path / "data")
    os.makedirs(d)

    def user(*args, stdin=b""):
        return subprocess.run([NOTIFD, "user", *args, "-d", d], input=stdin,
                              capture_output=True, timeout=60)

    assert user("add", "carol", stdin=b"first password\n").returncode == 0
    assert user("add", "carol", stdin=b"first password\n").returncode == 1
    assert user("add", "carol x", stdin=b"first password\n").returncode == 2
    assert user("add", "dave", stdin=b"short\n").returncode == 1
    out = user("list")
    assert out.returncode == 0 and out.stdout.decode().split("\t")[0] == "carol"
    import sqlite3

    def stored():
        db = sqlite3.connect(os.path.join(d, "users.db"))
        (h,) = db.execute("SELECT password_hash FROM users WHERE user_id='carol'").fetchone()
        db.close()
        return h

    assert PasswordHasher().verify(stored(), "first password")
    assert user("passwd", "carol", stdin=b"second password\n").returncode == 0
    assert PasswordHasher().verify(stored(), "second password")
    assert user("passwd", "nobody", stdin=b"second password\n").returncode == 1
    assert user("del", "carol").returncode == 0
    assert user("del", "carol").returncode == 1
    assert user("list").stdout == b""
    assert subprocess.run([NOTIFD, "user", "list"], capture_output=True).returncode == 2


def test_check_warns_about_seed_mode_on_a_public_address(tmp_path):
    build = os.path.dirname(os.path.dirname(NOTIFD))
    env = dict(os.environ, NOTIFD_DATA_DIR=str(tmp_path / "data"),
               NOTIFD_PLUGIN_DIR=os.path.join(build, "plugins"),
               NOTIFD_TEMPLATES_DIR=os.path.join(SOURCE, "config", "templates"))
    for mode, address, warned in (("none", "0.0.0.0", True), ("none", "127.0.0.1", False),
                                  ("users", "0.0.0.0", False)):
        out = subprocess.run([NOTIFD, "--check", "-c", SINGLE_NODE], capture_output=True,
                             timeout=60, env=dict(env, NOTIFD_AUTH_MODE=mode,
                                                  NOTIFD_ADDRESS=address))
        assert out.returncode == 0, out.stderr
        assert (b"seed compatibility" in out.stderr) == warned, (mode, address, out.stderr)


def test_tokens_in_urls_only_on_websocket_upgrades(single_node):
    n = single_node()
    assert register(n, "alice")[0] == 201
    t = login(n, "alice")
    assert get(n, "/auth/me", t)[0] == 200
    # The same token in the query string of an ordinary request is not
    # taken: proxies and logs keep URLs.
    assert http("GET", f"{n.url}/auth/me?token={t}")[0] == 401
    assert run(upgrade_status(f"{n.ws_url}/notifications/subscribe?user_id=alice&token={t}")) \
        == 101


def test_password_change_ends_refresh(single_node):
    n = single_node()
    assert register(n, "alice")[0] == 201
    old = login(n, "alice")
    secret = open(os.path.join(n.data_dir, "auth.secret")).read().strip()
    claims = jwt.decode(old, secret, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 3600
    # Tokens are stamped in seconds: change the password in a later second.
    wait_until(lambda: int(__import__("time").time()) > claims["iat"], 5, "next second")
    out = subprocess.run([NOTIFD, "user", "passwd", "alice", "-d", n.data_dir],
                         input=b"a new password\n", capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    st, body = post(n, "/auth/refresh", {}, old)
    assert st == 401 and "sign in again" in body["error"]
    assert post(n, "/auth/login", {"user_id": "alice", "password": "correct horse"})[0] == 401
    new = login(n, "alice", "a new password")
    assert post(n, "/auth/refresh", {}, new)[0] == 200
    # A deleted account cannot refresh either.
    assert subprocess.run([NOTIFD, "user", "del", "alice", "-d", n.data_dir],
                          capture_output=True, timeout=60).returncode == 0
    assert post(n, "/auth/refresh", {}, new)[0] == 401


def test_login_attempts_are_rate_limited_per_user_and_per_address(single_node):
    n = single_node()
    assert register(n, "alice")[0] == 201
    assert register(n, "bob")[0] == 201
    import time
    wrong = {"user_id": "alice", "password": "not the password"}
    # auth.login_limit.per_user: 10 a minute (the default), refilling one
    # every 6 s while the attempts run.
    t0, first_refusal = time.monotonic(), None
    for i in range(40):
        st, raw, hdrs = http("POST", n.url + "/auth/login", wrong)
        if st == 429:
            first_refusal = i
            break
        assert st == 401, (i, st)
    elapsed = time.monotonic() - t0
    assert first_refusal is not None and 10 <= first_refusal <= 11 + elapsed / 6
    assert 1 <= int(hdrs["Retry-After"]) <= 6
    # Even the right password waits now.
    st, raw, hdrs = http("POST", n.url + "/auth/login",
                         {"user_id": "alice", "password": "correct horse"})
    assert st == 429, raw
    # Other users are not locked out by alice's attacker.
    assert login(n, "bob")
    # Per address (the loopback peer is a trusted proxy: X-Forwarded-For
    # names the client): 60 a minute, whatever the user ids.  The bucket
    # refills one a second while the attempts run.
    xff = {"X-Forwarded-For": "198.51.100.7"}
    t0, first_refusal = time.monotonic(), None
    for i in range(200):
        st, _ = post(n, "/auth/login", {"user_id": f"u{i}", "password": "whatever pw"},
                     headers=xff)
        if st == 429:
            first_refusal = i
            break
        assert st == 401, (i, st)
    elapsed = time.monotonic() - t0
    assert first_refusal is not None and 60 <= first_refusal <= 61 + elapsed, \
        (first_refusal, elapsed)
    # Registrations count against the same address (a token may have
    # refilled since the refusal: one of two quick tries is refused).
    assert 429 in [post(n, "/auth/register", {"user_id": f"carol{i}", "password": "correct horse"},
                        headers=xff)[0] for i in range(2)]
    assert post(n, "/auth/login", {"user_id": "bob", "password": "correct horse"},
                headers={"X-Forwarded-For": "198.51.100.8"})[0] == 200
