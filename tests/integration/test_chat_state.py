"""Conversations and read state of chat_persistence (issue 12, point 3) on
one node with chat_persistence, chat_change_handler, chat_ws and
notifications_ws: once in seed mode (`auth: {mode: none}`, the user named by
`user_id`) and once in users mode (`auth: {mode: users}`, HS256 tokens made
with PyJWT, the user = the token's `sub`), on the SQLite store; and the
MongoDB store on a real FerretDB v1 (tests/services/ferretdb.sh; SKIPPED
with the reason when it cannot run here).

Covers: the conversation list (order by last message time, ties by stream
id; last_message exactly as the history returns it; unread per side) after
several messages in several conversations; read marks (unread after,
monotonic, another stream's message 400, unknown id 404, a non-participant
403, bad bodies 400); the user rules (seed: user_id required; users: the
token subject, a different user_id 403, no token 401) on the list, the
read mark and the history; counts surviving a restart; paging of
conversations (next_before, RFC 3339 `before`); a message retried with the
same message_id counted once; concurrent POSTs (shared group commits)
counted exactly; the read receipt POSTed with the internal
token to `chat_ws_url`; a chat.db written before conversations existed
gets them at start.
"""
import http.server as httpserver
import json
import os
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import jwt
import pytest

from conftest import checked_exits, free_port, http, metric, stream_id, wait_until
from test_chat_distributed import ferretdb  # noqa: F401  (module fixture: FerretDB v1)

SECRET = "chat-state-test-secret-0123456789abcdef"
INTERNAL = "chat-state-internal-token"
ROLES = ("chat_persistence", "chat_change_handler", "chat_ws", "notifications_ws")


@pytest.fixture
def notifd_factory(notifd_factory):
    yield from checked_exits(notifd_factory)


class Node:
    """A started notifd plus the way its users authenticate (mode)."""

    def __init__(self, factory, mode, persist=None, name="notifd", extra=""):
        self.factory, self.mode, self.persist, self.name, self.extra = (
            factory, mode, dict(persist or {}), name, extra)
        self.n = self._start()

    def _start(self):
        if self.mode == "users":
            auth = f"auth: {{mode: users, jwt_secret: {SECRET}, internal_token: {INTERNAL}}}\n"
        else:
            auth = f"auth: {{mode: none, internal_token: {INTERNAL}}}\n"
        y = ""
        for role in ROLES:
            y += f"  - name: {role}\n"
            if role == "chat_persistence" and self.persist:
                y += "    config:\n" + "".join(
                    f"      {k}: {v}\n" for k, v in self.persist.items())
        return self.factory(plugins_yaml=y, extra_yaml=auth + self.extra, name=self.name)

    def restart(self):
        assert self.n.stop() == 0
        self.n = self._start()

    def headers(self, user):
        if self.mode != "users" or user is None:
            return {}
        tok = jwt.encode({"sub": user, "exp": int(time.time()) + 3600}, SECRET, algorithm="HS256")
        return {"Authorization": f"Bearer {tok}"}

    def call(self, method, path, user, body=None, raw=None):
        st, data, _ = http(method, self.n.url + path, raw if raw is not None else body,
                           self.headers(user))
        try:
            return st, json.loads(data) if data else None
        except ValueError:
            return st, data

    def send(self, sender, receiver, content, **extra):
        body = dict({"content": content, "stream_id": stream_id(sender, receiver),
                     "sender_id": sender, "receiver_id": receiver}, **extra)
        st, m = self.call("POST", "/chat/messages", sender, body)
        assert st in (200, 201), m
        return m

    def _user_q(self, user, sep="?"):
        return f"{sep}user_id={user}" if self.mode != "users" else ""

    def conversations(self, user, query=""):
        q = self._user_q(user)
        if query:
            q += ("&" if q else "?") + query
        st, body = self.call("GET", "/chat/conversations" + q, user)
        assert st == 200, body
        return body

    def read(self, user, stream, message_id, expect=200):
        body = {"message_id": message_id}
        if self.mode != "users":
            body["user_id"] = user
        st, out = self.call("POST", f"/chat/streams/{stream}/read", user, body)
        assert st == expect, (st, out)
        return out

    def history(self, user, peer, query=""):
        q = f"?peer_id={peer}" + self._user_q(user, "&") + (f"&{query}" if query else "")
        st, body = self.call("GET", f"/chat/streams/{stream_id(user, peer)}/messages{q}", user)
        assert st == 200, body
        return body


def summary(conv):
    return [(c["stream_id"], c["peer_id"], c["last_message"]["message_id"], c["unread"])
            for c in conv["conversations"]]


def expected_order(items):
    """(stream, peer, last message, unread) sorted as the server must:
    last message time descending, ties by stream id descending."""
    return [t[1] for t in sorted(items, key=lambda t: (ms(t[0]), t[1][0]), reverse=True)]


def ms(created_at):
    """Go's time text (trailing zeros trimmed) as an orderable number."""
    return datetime.fromisoformat(created_at.replace("Z", "+00:00")).timestamp()


MODES = ["none", "users"]


def scenario_three_users(node):
    """A-B, C-A conversations; returns the stored messages."""
    m = {}
    m[1] = node.send("alice", "bob", "hi bob")
    m[2] = node.send("carol", "alice", "hi alice, carol here")
    m[3] = node.send("bob", "alice", "hi alice <b>&</b> 🎉")
    m[4] = node.send("alice", "carol", "hi carol")
    m[5] = node.send("carol", "alice", "how are you?")
    return m


def check_three_users(node, m):
    ab, ac = stream_id("alice", "bob"), stream_id("alice", "carol")
    t = {k: v["created_at"] for k, v in m.items()}
    a = node.conversations("alice")
    assert a["next_before"] is None
    assert summary(a) == expected_order([
        (t[3], (ab, "bob", m[3]["message_id"], 1)),
        (t[5], (ac, "carol", m[5]["message_id"], 2)),
    ])
    # last_message is the message exactly as the history returns it.
    for c in a["conversations"]:
        peer = c["peer_id"]
        assert c["last_message"] == node.history("alice", peer)["messages"][0]
    assert summary(node.conversations("bob")) == [(ab, "alice", m[3]["message_id"], 1)]
    assert summary(node.conversations("carol")) == [(ac, "alice", m[5]["message_id"], 1)]
    assert node.conversations("nobody")["conversations"] == []


@pytest.mark.parametrize("mode", MODES)
def test_conversations_unread_and_read_marks(notifd_factory, mode):
    node = Node(notifd_factory, mode)
    m = scenario_three_users(node)
    check_three_users(node, m)
    ab, ac = stream_id("alice", "bob"), stream_id("alice", "carol")

    def peer_read(user, peer):
        return {c["peer_id"]: c["peer_read_message_id"]
                for c in node.conversations(user)["conversations"]}[peer]

    assert peer_read("alice", "bob") is None and peer_read("bob", "alice") is None
    # Bob reads up to his latest message from alice: nothing left unread.
    r = node.read("bob", ab, m[1]["message_id"])
    # alice's list says how far bob read ("Seen" after a reload).
    assert peer_read("alice", "bob") == m[1]["message_id"]
    assert peer_read("bob", "alice") is None
    assert r == {"stream_id": ab, "user_id": "bob", "message_id": m[1]["message_id"], "unread": 0}
    m6 = node.send("alice", "bob", "one")
    m7 = node.send("alice", "bob", "two")
    node.send("bob", "alice", "bob's own message does not count for bob")
    assert summary(node.conversations("bob"))[0][3] == 2
    assert node.read("bob", ab, m6["message_id"])["unread"] == 1
    # Monotonic: an older message never moves the mark back.
    assert node.read("bob", ab, m[1]["message_id"])["unread"] == 1
    assert summary(node.conversations("bob"))[0][3] == 1
    # Reading one's own message marks everything before it.
    assert node.read("bob", ab, m[3]["message_id"])["unread"] == 1
    assert node.read("bob", ab, m7["message_id"])["unread"] == 0
    assert peer_read("alice", "bob") == m7["message_id"]
    # Alice's side is her own: carol's two are still unread, bob's two too.
    a = {c["peer_id"]: c["unread"] for c in node.conversations("alice")["conversations"]}
    assert a == {"bob": 2, "carol": 2}
    assert node.read("alice", ac, m[2]["message_id"])["unread"] == 1
    assert peer_read("carol", "alice") == m[2]["message_id"]

    # Wrong stream, unknown id, someone else's stream.
    err = node.read("alice", ab, m[5]["message_id"], expect=400)
    assert "not a message of this stream" in err["error"]
    assert node.read("bob", ab, "no-such-message", expect=404)["error"] == "message not found"
    assert node.read("bob", ac, m[5]["message_id"], expect=403)
    assert node.read("carol", ab, m[1]["message_id"], expect=403)
    # Nothing moved.
    a = {c["peer_id"]: c["unread"] for c in node.conversations("alice")["conversations"]}
    assert a == {"bob": 2, "carol": 1}
    assert summary(node.conversations("bob"))[0][3] == 0


@pytest.mark.parametrize("mode", MODES)
def test_bad_input(notifd_factory, mode):
    node = Node(notifd_factory, mode)
    m = node.send("alice", "bob", "x")
    ab = stream_id("alice", "bob")
    path = f"/chat/streams/{ab}/read"
    me = {} if mode == "users" else {"user_id": "bob"}
    q = "" if mode == "users" else "&user_id=bob"
    bad_bodies = [b"{", b"[]", b'"x"', b"{}", b'{"message_id": 5}', b'{"message_id": ""}',
                  json.dumps(dict(me, message_id="x" * 5000)).encode(),
                  json.dumps(dict(me, message_id=m["message_id"], user_id=7)).encode()]
    for raw in bad_bodies:
        st, body = node.call("POST", path, "bob", raw=raw)
        assert st == 400, (raw, st, body)
    # czoxOjE = base64url("s:1:1"), a history (SQLite) cursor: not one of the list's.
    for query in ("limit=0", "limit=-1", "limit=abc", "before=garbage", "before=czoxOjE"):
        st, body = node.call("GET", f"/chat/conversations?{query}{q}", "bob")
        assert st == 400, (query, body)
    # Huge limits are capped, not refused.
    st, body = node.call("GET", f"/chat/conversations?limit=99999999999{q}", "bob")
    assert st == 200 and len(body["conversations"]) == 1
    st, body = node.call("GET", f"/chat/conversations?limit=1{'0' * 40}{q}", "bob")
    assert st == 400
    if mode == "users":
        # No token, another user's id.
        st, _ = node.call("GET", "/chat/conversations", None)
        assert st == 401
        st, _ = node.call("POST", path, None, {"message_id": m["message_id"]})
        assert st == 401
        st, body = node.call("GET", "/chat/conversations?user_id=alice", "bob")
        assert st == 403, body
        st, body = node.call("GET", "/chat/conversations?user_id=bob", "bob")
        assert st == 200
        st, body = node.call("POST", path, "bob", {"message_id": m["message_id"],
                                                   "user_id": "alice"})
        assert st == 403, body
        # History: the same rules (user_id, if given, is the caller).
        st, body = node.call("GET", f"/chat/streams/{ab}/messages?peer_id=alice&user_id=alice",
                             "bob")
        assert st == 403, body
        st, body = node.call("GET", f"/chat/streams/{ab}/messages?peer_id=carol", "bob")
        assert st == 403, body
    else:
        st, body = node.call("GET", "/chat/conversations", None)
        assert st == 400 and "user_id" in body["error"]
        st, body = node.call("POST", path, None, {"message_id": m["message_id"]})
        assert st == 400 and "user_id" in body["error"]
    # Nothing stored wrongly: bob still has one unread message.
    assert summary(node.conversations("bob")) == [(ab, "alice", m["message_id"], 1)]


@pytest.mark.parametrize("mode", MODES)
def test_counts_survive_a_restart_and_retries_count_once(notifd_factory, mode):
    node = Node(notifd_factory, mode)
    m = scenario_three_users(node)
    ab = stream_id("alice", "bob")
    first = node.send("bob", "alice", "retried", message_id="retry-1")
    again = node.send("bob", "alice", "retried", message_id="retry-1")
    assert again == first
    a = {c["peer_id"]: c["unread"] for c in node.conversations("alice")["conversations"]}
    assert a == {"bob": 2, "carol": 2}
    node.read("alice", ab, m[3]["message_id"])
    before = node.conversations("alice")
    assert summary(before)[0][3] == 1 or summary(before)[1][3] == 1
    node.restart()
    assert node.conversations("alice") == before
    node.send("bob", "alice", "retried", message_id="retry-1")  # after the restart too
    assert node.conversations("alice") == before
    assert node.read("alice", ab, first["message_id"])["unread"] == 0


@pytest.mark.parametrize("mode", MODES)
def test_conversation_paging(notifd_factory, mode):
    node = Node(notifd_factory, mode)
    peers = [f"peer-{i}" for i in range(7)]
    sent = {}
    for p in peers:
        sent[p] = node.send(p, "hub", f"from {p}")
    full = node.conversations("hub", "limit=200")
    assert full["next_before"] is None and len(full["conversations"]) == 7
    assert summary(full) == expected_order(
        [(sent[p]["created_at"], (stream_id(p, "hub"), p, sent[p]["message_id"], 1))
         for p in peers])
    pages, cursor = [], None
    while True:
        page = node.conversations("hub", "limit=3" + (f"&before={cursor}" if cursor else ""))
        pages.append(page["conversations"])
        cursor = page["next_before"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [c for p in pages for c in p] == full["conversations"]
    # A bare RFC 3339 time includes its millisecond.
    oldest = full["conversations"][-1]["last_message"]["created_at"]
    got = node.conversations("hub", f"before={oldest}")["conversations"]
    assert [c["stream_id"] for c in got] == [
        c["stream_id"] for c in full["conversations"]
        if c["last_message"]["created_at"] == oldest]
    # History pages the same way: newest first, next_before until null.
    for i in range(5):
        node.send("hub", "peer-0", f"more {i}")
    seen, cursor = [], None
    while True:
        page = node.history("hub", "peer-0", "limit=2" + (f"&before={cursor}" if cursor else ""))
        seen += page["messages"]
        cursor = page["next_before"]
        if cursor is None:
            break
    assert [x["content"] for x in seen] == [f"more {i}" for i in range(4, -1, -1)] + ["from peer-0"]


@pytest.mark.parametrize("mode", ["users"])
def test_concurrent_posts_are_counted_exactly(notifd_factory, mode):
    """Many POSTs at once share group commits (the SQLite store folds a
    batch's conversation updates): every message counts exactly once, the
    last message is the history's newest."""
    # The per-user write limit would refuse a burst of 120 from one user.
    node = Node(notifd_factory, mode, extra="http: {rate_limit: {rate: 100000, burst: 100000}}\n")
    from concurrent.futures import ThreadPoolExecutor
    jobs = [("alice", "bob", i) for i in range(120)] + [("bob", "alice", i) for i in range(80)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda j: node.send(j[0], j[1], f"c{j[2]}"), jobs))
    for user, peer, n in (("bob", "alice", 120), ("alice", "bob", 80)):
        [c] = node.conversations(user)["conversations"]
        assert c["unread"] == n
        assert c["last_message"] == node.history(user, peer, "limit=1")["messages"][0]
    newest = node.history("bob", "alice", "limit=200")["messages"]
    mid = next(m for m in newest if m["sender_id"] == "alice")  # bob reads up to alice's last
    assert node.read("bob", stream_id("alice", "bob"), mid["message_id"])["unread"] == 0


class Recorder(httpserver.BaseHTTPRequestHandler):
    got = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Recorder.got.append((self.path, dict(self.headers), json.loads(body)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *a):
        pass


def test_read_receipt_goes_to_chat_ws_url_with_the_internal_token(notifd_factory):
    server = httpserver.ThreadingHTTPServer(("127.0.0.1", free_port()), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        node = Node(notifd_factory, "users", persist={"chat_ws_url": url})
        m = node.send("alice", "bob", "see me")
        ab = stream_id("alice", "bob")
        node.read("bob", ab, m["message_id"])
        wait_until(lambda: Recorder.got, what="the read receipt")
        path, headers, body = Recorder.got[0]
        assert path == f"/chat/forward-event?stream_id={ab}"
        assert headers.get("X-Notifd-Internal-Token") == INTERNAL
        assert body == {"stream_id": ab, "event": {"type": "read", "user_id": "bob",
                                                   "message_id": m["message_id"]}}
    finally:
        server.shutdown()
        server.server_close()


def test_a_chat_db_from_before_conversations_gets_them(notifd_factory, tmp_path):
    data = tmp_path / "old-data"
    os.makedirs(data)
    db = sqlite3.connect(str(data / "chat.db"))
    db.executescript(
        "CREATE TABLE messages(seq INTEGER PRIMARY KEY, message_id TEXT NOT NULL UNIQUE,"
        " id_oid INTEGER NOT NULL DEFAULT 0, content TEXT NOT NULL, created_at INTEGER NOT NULL,"
        " stream_id TEXT NOT NULL, sender_id TEXT NOT NULL, receiver_id TEXT NOT NULL);"
        "CREATE INDEX messages_by_stream ON messages(stream_id, created_at, seq);")
    ab, ac = stream_id("alice", "bob"), stream_id("alice", "carol")
    rows = [("o1", 1000, ab, "alice", "bob"), ("o2", 2000, ab, "bob", "alice"),
            ("o3", 3000, ab, "bob", "alice"), ("o4", 2500, ac, "alice", "carol")]
    db.executemany("INSERT INTO messages(message_id, content, created_at, stream_id, sender_id,"
                   " receiver_id) VALUES(?, 'old', ?, ?, ?, ?)", rows)
    db.commit()
    db.close()
    node = Node(notifd_factory, "none", persist={"store_path": str(data / "chat.db")})
    assert summary(node.conversations("alice")) == [(ab, "bob", "o3", 2), (ac, "carol", "o4", 0)]
    assert summary(node.conversations("bob")) == [(ab, "alice", "o3", 1)]
    assert node.read("alice", ab, "o2")["unread"] == 1


# ---- MongoDB store (FerretDB v1) -------------------------------------------

def test_mongodb_store_conversations_and_read_marks(notifd_factory, ferretdb):  # noqa: F811
    db = f"chat_state_{int(time.time() * 1000)}"
    node = Node(notifd_factory, "users", persist={"store": "mongodb", "relay": "poll",
                                                  "relay_poll_interval": "200ms"},
                extra=f"backends:\n  mongodb: {{uri: \"{ferretdb}\", database: {db}}}\n")
    wait_until(lambda: "MongoDB reachable" in node.n.read_log(), 30, "MongoDB setup")
    m = scenario_three_users(node)
    check_three_users(node, m)
    ab, ac = stream_id("alice", "bob"), stream_id("alice", "carol")
    # A retried message_id is counted once.
    first = node.send("bob", "alice", "retried", message_id="retry-1")
    assert node.send("bob", "alice", "retried", message_id="retry-1") == first
    a = {c["peer_id"]: c["unread"] for c in node.conversations("alice")["conversations"]}
    assert a == {"bob": 2, "carol": 2}
    assert node.read("alice", ab, m[3]["message_id"])["unread"] == 1
    assert node.read("alice", ab, m[1]["message_id"])["unread"] == 1  # monotonic
    assert node.read("alice", ab, first["message_id"])["unread"] == 0
    # A message older than the mark cannot exist; a new one counts again.
    node.send("bob", "alice", "after the mark")
    assert {c["peer_id"]: c["unread"]
            for c in node.conversations("alice")["conversations"]}["bob"] == 1
    assert node.read("alice", ab, m[5]["message_id"], expect=400)
    assert node.read("carol", ab, m[1]["message_id"], expect=403)
    assert node.read("alice", ab, "nope", expect=404)
    assert node.read("alice", ac, m[5]["message_id"])["unread"] == 0
    # The peers' read marks: bob read nothing, alice read up to m5 with carol.
    bob_side = {c["peer_id"]: c["peer_read_message_id"]
                for c in node.conversations("bob")["conversations"]}
    assert bob_side == {"alice": first["message_id"]}
    carol_side = {c["peer_id"]: c["peer_read_message_id"]
                  for c in node.conversations("carol")["conversations"]}
    assert carol_side == {"alice": m[5]["message_id"]}
    assert all(c["peer_read_message_id"] is None
               for c in node.conversations("alice")["conversations"])
    # Paging.
    page = node.conversations("alice", "limit=1")
    assert len(page["conversations"]) == 1 and page["next_before"]
    rest = node.conversations("alice", f"before={page['next_before']}")
    assert rest["next_before"] is None
    whole = node.conversations("alice")["conversations"]
    assert page["conversations"] + rest["conversations"] == whole
    # Counts survive a restart (they are in the collection).
    node.restart()
    wait_until(lambda: node.n.read_log().count("MongoDB reachable") >= 2, 30, "MongoDB setup")
    assert node.conversations("alice")["conversations"] == whole


def test_mongodb_group_commit_burst_with_retries(notifd_factory, ferretdb):  # noqa: F811
    """Many POSTs at once on the MongoDB store: they are stored in group
    commits (one insert_many per batch), every message_id posted twice at
    the same time (a client retry) is stored once and answered "existing"
    once, the conversation state (applied after the answers) counts each
    message once, and every message's change record is published."""
    db = f"chat_burst_{int(time.time() * 1000)}"
    node = Node(notifd_factory, "users", persist={"store": "mongodb", "relay": "poll",
                                                  "relay_poll_interval": "200ms"},
                extra=f"backends:\n  mongodb: {{uri: \"{ferretdb}\", database: {db}}}\n")
    wait_until(lambda: "MongoDB reachable" in node.n.read_log(), 30, "MongoDB setup")
    # 40 senders (the per-user write limit stays out of the way), two
    # messages each to alice, one each from alice to the first 10.
    senders = [f"burst-user-{i}" for i in range(40)]
    jobs = [(u, "alice", f"{u}-{k}") for u in senders for k in range(2)]
    jobs += [("alice", u, f"alice-{u}") for u in senders[:10]]
    jobs = jobs + jobs  # each message_id twice, concurrently

    def send(job):
        sender, receiver, mid = job
        return node.send(sender, receiver, f"burst {mid}", message_id=f"burst-{mid}")

    with ThreadPoolExecutor(max_workers=24) as ex:
        answers = list(ex.map(send, jobs))
    by_id = {}
    for a in answers:
        by_id.setdefault(a["message_id"], []).append(a)
    assert len(by_id) == 90
    assert all(len(v) == 2 and v[0] == v[1] for v in by_id.values())  # the stored message twice
    assert metric(node.n, "chat_persistence_requests_total", result="created") == 90
    assert metric(node.n, "chat_persistence_requests_total", result="existing") == 90
    alice = {c["peer_id"]: c["unread"]
             for c in node.conversations("alice", "limit=100")["conversations"]}
    assert alice == {u: 2 for u in senders}
    for u in senders[:10]:
        assert {c["peer_id"]: c["unread"] for c in node.conversations(u)["conversations"]} == \
            {"alice": 1}
    wait_until(lambda: metric(node.n, "chat_persistence_relay_published_total") >= 90, 30,
               "every change record published")
