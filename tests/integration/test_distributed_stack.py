"""The distributed deployment end to end, every request through nginx.

tests/distributed/stack.sh starts (once for this module) Kafka, redis-server,
FerretDB, an SMTP server, nginx (config/distributed/nginx.conf.template) and
eight notifd processes with config/distributed/*.yaml: P chat_persistence,
H chat_change_handler, W1/W2 chat_ws, N1/N2 notifications_ws, WP webpush,
E email.

Covers: POST /chat/persist via nginx -> MongoDB -> poll relay -> Kafka -> H
(Redis dedupe) -> forward via nginx (hash of ?stream_id=) -> the chat_ws
holding the stream's sockets (connected via nginx); many streams, each always
on one instance (nginx access log and each instance's metrics agree), both
instances used; the receiver's notification via nginx (hash of user_id);
history via nginx; notifications from HTTP and from the Kafka topic (one
shared group, forwarded to the user's instance); the users' server state:
the MongoDB inbox listed and marked read through nginx, preferences,
recovery with since=, each stored notification once on notification-events,
Web Push for a user with no socket (webpush on the event stream, MongoDB
subscriptions); email over SMTP from the event stream with the recipient in
MongoDB; internal routes not on the public listener and refused without the
token; a chat_ws instance down (its streams wait for it, nothing is lost
from the history, no stream split after it is back); presence of a user on
one chat_ws reaching their peer on the other through Kafka; every notifd
exits 0 on SIGTERM.

A service that cannot run here makes the tests SKIPPED with the reason.
"""
import asyncio
import glob
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from email import message_from_bytes, policy

import jwt
import pytest
import websockets

from conftest import BUILD, NOTIFD, SOURCE, http, stream_id, wait_until

STACK_SH = os.path.join(SOURCE, "tests", "distributed", "stack.sh")
CHAT_CHANNEL = "/chat/subscribe-websocket"


class Stack:
    def __init__(self, directory):
        self.dir = directory
        self.env = {}
        with open(os.path.join(directory, "stack.env")) as f:
            for line in f:
                k, _, v = line.rstrip("\n").partition("=")
                self.env[k] = " ".join(shlex.split(v)) if v else ""
        e = self.env
        self.public, self.internal = e["STACK_PUBLIC_URL"], e["STACK_INTERNAL_URL"]
        self.ws = self.public.replace("http://", "ws://")
        self.token = e["STACK_INTERNAL_TOKEN"]
        self.auth = {"X-Notifd-Internal-Token": self.token}
        self.kafka = e["STACK_KAFKA"]
        self.instances = e["STACK_INSTANCES"].split()
        # nginx's $upstream_addr -> instance name
        self.by_addr = {f"127.0.0.1:{e[f'STACK_{i}_PORT']}": i for i in self.instances}

    def admin(self, inst):
        return f"http://127.0.0.1:{self.env[f'STACK_{inst}_ADMIN_PORT']}"

    def metric(self, inst, name, **labels):
        text = http("GET", self.admin(inst) + "/metrics")[1].decode()
        total = 0.0
        for line in text.splitlines():
            if not (line.startswith(name + "{") or line.startswith(name + " ")):
                continue
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def access_log(self):
        """[(method, path, status, instance, stream, user)] from nginx."""
        pat = re.compile(r'"(\S+) (\S+) [^"]*" (\d+) upstream=(.*?) stream=(\S*) user=(\S*) ')
        out = []
        with open(self.env["STACK_NGINX_ACCESS_LOG"]) as f:
            for line in f:
                m = pat.search(line)
                if m:
                    meth, path, st, up, sid, user = m.groups()
                    # a retried request lists every upstream tried; the last one answered
                    last = up.split(", ")[-1]
                    out.append((meth, path, int(st), self.by_addr.get(last, last), sid, user))
        return out

    def log(self, inst):
        with open(self.env[f"STACK_{inst}_LOG"], errors="replace") as f:
            return f.read()


@pytest.fixture(scope="module")
def stack():
    d = tempfile.mkdtemp(prefix="notifd-stack-")
    env = dict(os.environ, NOTIFD_BUILD_ROOT=BUILD)
    try:
        r = subprocess.run([STACK_SH, "start", d], capture_output=True, timeout=1500, env=env)
        if r.returncode == 2:
            pytest.skip("SKIPPED: " + r.stderr.decode().strip()[-500:])
        assert r.returncode == 0, f"stack.sh start failed:\n{r.stderr.decode()[-4000:]}"
        yield Stack(d)
    finally:
        subprocess.run([STACK_SH, "stop", d], capture_output=True, timeout=180)
        if not os.environ.get("NOTIFD_STACK_KEEP"):  # keep the logs to debug a run
            shutil.rmtree(d, ignore_errors=True)


def run(coro, timeout=120):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def in_thread(fn):
    return await asyncio.get_running_loop().run_in_executor(None, fn)


async def recv_json(ws, timeout=30):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def assert_silent(ws, wait=0.5):
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(ws.recv(), wait)


def token(stack, user):
    """A user's JWT as the application's identity provider would issue it
    (the stack runs auth.mode users with an HS256 secret)."""
    return jwt.encode({"sub": user, "exp": int(time.time()) + 3600},
                      stack.env["STACK_JWT_SECRET"], algorithm="HS256")


def bearer(stack, user):
    return {"Authorization": "Bearer " + token(stack, user)}


def chat_socket(stack, me, peer):
    q = f"stream_id={stream_id(me, peer)}&sender_id={me}&receiver_id={peer}"
    return websockets.connect(f"{stack.ws}{CHAT_CHANNEL}?{q}&token={token(stack, me)}",
                              open_timeout=15)


def notif_socket(stack, user):
    return websockets.connect(
        f"{stack.ws}/notifications/subscribe?user_id={user}&token={token(stack, user)}",
        open_timeout=15)


def history(stack, me, peer, query=""):
    return http("GET", f"{stack.public}/chat/streams/{stream_id(me, peer)}/messages"
                f"?peer_id={peer}{query}", headers=bearer(stack, me))


def persist(stack, sender, receiver, content):
    st, raw, _ = http("POST", stack.public + "/chat/persist",
                      {"content": content, "stream_id": stream_id(sender, receiver),
                       "sender_id": sender, "receiver_id": receiver},
                      headers=bearer(stack, sender))
    assert st == 201, raw
    return json.loads(raw)


def pairs(n):
    tag = uuid.uuid4().hex[:8]
    return [(f"a{tag}{i}", f"b{tag}{i}") for i in range(n)]


# ---- tests ------------------------------------------------------------------

STREAMS = 16


def test_messages_flow_end_to_end_and_each_stream_stays_on_one_chat_ws(stack):
    users = pairs(STREAMS)
    sids = {stream_id(a, b) for a, b in users}
    before = {w: (stack.metric(w, "chat_ws_forwards_total", result="delivered"),
                  stack.metric(w, "chat_ws_forwards_total", result="no_subscribers"))
              for w in ("W1", "W2")}
    gauges = {}

    async def round_of_messages(label):
        """Both sides of every stream connected via nginx, one message each
        way; every socket sees both, each receiver's notification socket its
        own."""
        chat = [chat_socket(stack, me, peer) for a, b in users for me, peer in ((a, b), (b, a))]
        notif = [notif_socket(stack, u) for a, b in users for u in (a, b)]
        socks = await asyncio.gather(*(c.__aenter__() for c in chat + notif))
        try:
            chat_ws, notif_ws = socks[:len(chat)], socks[len(chat):]
            gauges[label] = {w: stack.metric(w, "notifd_ws_connections", channel=CHAT_CHANNEL)
                             for w in ("W1", "W2")}
            sent = []
            for a, b in users:
                sent.append(await in_thread(lambda a=a, b=b: persist(stack, a, b, f"{label} {a}")))
                sent.append(await in_thread(lambda a=a, b=b: persist(stack, b, a, f"{label} {b}")))
            for i in range(len(users)):
                want = {sent[2 * i]["message_id"]: sent[2 * i], sent[2 * i + 1]["message_id"]:
                        sent[2 * i + 1]}
                for ws in chat_ws[2 * i:2 * i + 2]:
                    got = [await recv_json(ws), await recv_json(ws)]
                    assert {m["message_id"]: m for m in got} == want
                # a's notification socket: b's message; b's: a's message
                na, nb = notif_ws[2 * i], notif_ws[2 * i + 1]
                fa, fb = await recv_json(na), await recv_json(nb)
                assert fb["notification_type"] == "chat_notification"
                assert fb["payload"] == sent[2 * i]
                assert fa["payload"] == sent[2 * i + 1]
            await asyncio.gather(*(assert_silent(ws, 0.2) for ws in socks))
            return sent
        finally:
            await asyncio.gather(*(c.__aexit__(None, None, None) for c in chat + notif))

    sent = run(round_of_messages("first"))
    sent += run(round_of_messages("reconnected"))  # new sockets, same streams

    # nginx: every request of a stream (subscribes of both rounds, forwards)
    # went to one chat_ws instance, and both instances have streams.
    def routed():
        placed, forwards = {}, {}
        for meth, path, st, inst, sid, _ in stack.access_log():
            if sid not in sids:
                continue
            placed.setdefault(sid, set()).add(inst)
            if path.startswith("/chat/forward-to-websocket"):
                assert st == 200 and meth == "POST"
                forwards[sid] = forwards.get(sid, 0) + 1
        return placed, forwards

    # websocket requests are logged when they close
    wait_until(lambda: sum(routed()[1].values()) == len(sent) and len(routed()[0]) == STREAMS,
               what="nginx access log", timeout=30)
    placed, forwards = routed()
    for sid, insts in placed.items():
        assert len(insts) == 1, f"stream {sid} on {insts}"
    on = {w: {sid for sid, insts in placed.items() if insts == {w}} for w in ("W1", "W2")}
    assert on["W1"] and on["W2"], on
    assert all(n == 4 for n in forwards.values())

    # The instances agree: each held 2 sockets per stream nginx sent it and
    # delivered every forward of those streams; none got a forward without
    # the stream's sockets.
    for label in ("first", "reconnected"):
        for w in ("W1", "W2"):
            assert gauges[label][w] == 2 * len(on[w]), (label, w, gauges[label], on)
    for w in ("W1", "W2"):
        delivered = stack.metric(w, "chat_ws_forwards_total", result="delivered") - before[w][0]
        missed = stack.metric(w, "chat_ws_forwards_total", result="no_subscribers") - before[w][1]
        assert delivered == 4 * len(on[w]), (w, delivered, on)
        assert missed == 0, w


def test_history_via_nginx(stack):
    (a, b), = pairs(1)
    sent = [persist(stack, a, b, "h1"), persist(stack, b, a, "h2"), persist(stack, a, b, "h3")]
    st, raw, _ = history(stack, a, b, "&limit=2")
    assert st == 200, raw
    page = json.loads(raw)
    assert [m["content"] for m in page["messages"]] == ["h3", "h2"]
    assert page["next_before"]
    st, raw, _ = history(stack, b, a, "&limit=2&before=" + page["next_before"])
    assert st == 200 and json.loads(raw) == {"messages": [sent[0]], "next_before": None}
    st, raw, _ = http("GET", f"{stack.public}/chat/messages/{sent[1]['message_id']}",
                      headers=bearer(stack, a))
    assert st == 200 and json.loads(raw) == sent[1]
    # Users only: no token, or a token of someone outside the conversation.
    assert http("GET", f"{stack.public}/chat/streams/{stream_id(a, b)}/messages?peer_id={b}")[0] \
        == 401
    st, raw, _ = http("GET", f"{stack.public}/chat/streams/{stream_id(a, b)}/messages"
                      f"?peer_id={b}", headers=bearer(stack, "mallory"))
    assert st == 403, raw
    # the store is MongoDB (FerretDB): P holds no SQLite chat database
    assert not os.path.exists(os.path.join(stack.dir, "P", "data", "chat.db"))


def test_notifications_over_http_and_kafka_reach_the_users_instance(stack):
    tag = uuid.uuid4().hex[:8]
    users = [f"n{tag}{i}" for i in range(12)]  # all on one of two: p = 2^-11
    shipping = {"order_id": "ORD-7", "tracking_number": "TN-1", "status": "shipped"}

    async def scenario():
        conns = [notif_socket(stack, u) for u in users]
        socks = await asyncio.gather(*(c.__aenter__() for c in conns))
        try:
            for u, ws in zip(users, socks):
                purchase = {"order_id": f"O-{u}", "buyer_id": u, "shop_owner_id": "shop",
                            "product_name": "Coffee", "amount": 15.99, "currency": "USD",
                            "status": "confirmed"}
                st, raw, _ = await in_thread(lambda u=u, p=purchase: http(
                    "POST", f"{stack.internal}/notifications/purchase?user_id={u}", p,
                    headers=stack.auth))
                assert st == 200 and json.loads(raw)["delivered"] == 1, raw
                got = await recv_json(ws)
                assert got["notification_type"] == "purchase_notification"
                assert got["payload"]["order_id"] == f"O-{u}"
                record = json.dumps({"type": "shipping-update", "user_id": u,
                                     "payload": shipping})
                await in_thread(lambda u=u, r=record: produce(stack, "notifications", r, key=u))
                got = await recv_json(ws)
                assert got["notification_type"] == "shipping_update_notification"
                assert got["payload"]["tracking_number"] == "TN-1"
            await asyncio.gather(*(assert_silent(ws, 0.2) for ws in socks))
        finally:
            await asyncio.gather(*(c.__aexit__(None, None, None) for c in conns))

    run(scenario())
    # Both notifications_ws instances hold some of the users, and each
    # delivered the HTTP calls for exactly the users nginx sent it.
    held = {}
    for _, path, _, inst, _, user in stack.access_log():
        if user in users:
            held.setdefault(user, set()).add(inst)
    assert all(len(v) == 1 for v in held.values()), held
    assert {i for v in held.values() for i in v} == {"N1", "N2"}, held


def produce(stack, topic, value, key=None, headers=None):
    args = [NOTIFD, "bus", "produce", "-b", stack.kafka]
    if key is not None:
        args += ["-k", key]
    for name, v in (headers or {}).items():
        args += ["-H", f"{name}={v}"]
    r = subprocess.run(args + [topic, value], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()


def test_email_over_smtp_with_the_directory_in_mongodb(stack):
    if stack.env["STACK_EMAIL"] != "on":
        pytest.skip("SKIPPED: email role not started: " + stack.env["STACK_EMAIL_REASON"])
    (a, b), = pairs(1)
    for u in (a, b):
        st, raw, _ = http("PUT", f"{stack.internal}/email/users/{u}",
                          {"email": f"{u}@example.com", "name": f"Name {u}"}, headers=stack.auth)
        assert st == 200, raw
    # E mails from the event stream notifications_ws produces after storing
    # (docs/events.md); the events are produced here in that shape.
    def event(ev_id, notification_type, payload, headers=None):
        value = {"id": ev_id, "user_id": b, "notification_type": notification_type,
                 "timestamp": "2026-12-07T21:00:00Z", "payload": payload}
        produce(stack, "notification-events", json.dumps(value), key=b, headers=headers)

    event(1, "chat_notification", {"message_id": "m-mail", "content": "mail me",
                                   "created_at": "2026-12-07T21:00:00Z",
                                   "stream_id": stream_id(a, b), "sender_id": a,
                                   "receiver_id": b})
    purchase = {"order_id": "ORD-MAIL", "buyer_id": b, "shop_owner_id": "s",
                "product_name": "Tea", "amount": 3.5, "currency": "EUR", "status": "confirmed"}
    event(2, "purchase_notification", purchase)
    event(3, "purchase_notification", dict(purchase, order_id="ORD-MUTED"),
          headers={"notifd-muted": "push,email"})
    event(2, "purchase_notification", purchase)  # a replayed event: mailed once

    def mails_to(addr):
        out = []
        for path in sorted(glob.glob(os.path.join(stack.env["STACK_SMTP_OUTDIR"], "*.eml"))):
            with open(path, "rb") as f:
                m = message_from_bytes(f.read(), policy=policy.default)
            if addr in str(m["To"]):
                out.append(m)
        return out

    wait_until(lambda: len(mails_to(f"{b}@example.com")) == 2, what="two mails", timeout=30)
    mails = mails_to(f"{b}@example.com")
    bodies = {str(m["Subject"]): m.get_body(("plain",)).get_content() for m in mails}
    chat = [s for s in bodies if f"Name {a}" in s]
    assert len(chat) == 1 and "mail me" in bodies[chat[0]], bodies
    assert any("ORD-MAIL" in body for body in bodies.values()), bodies
    assert stack.metric("E", "email_sent_total", type="chat") >= 1
    assert stack.metric("E", "email_sent_total", type="purchase") >= 1
    wait_until(lambda: stack.metric("E", "email_suppressed_total", type="purchase",
                                    reason="duplicate") >= 1
               and stack.metric("E", "email_suppressed_total", type="purchase",
                                reason="preferences") >= 1, what="duplicate and muted")
    assert len(mails_to(f"{b}@example.com")) == 2


def tail_events(stack, n, idle="20s"):
    """The first n records of the notification-events topic (from the
    beginning, a private group), as (key, headers, value) tuples."""
    r = subprocess.run([NOTIFD, "bus", "tail", "-b", stack.kafka, "-B", "-f", "-n", str(n),
                        "-t", idle, "notification-events"], capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    out = []
    for line in r.stdout.decode().splitlines():
        rec = json.loads(line)
        out.append((rec.get("key"), rec.get("headers") or {}, json.loads(rec["value"])))
    return out


def inbox(stack, user, query=""):
    st, raw, _ = http("GET", f"{stack.public}/notifications?user_id={user}{query}",
                      headers=bearer(stack, user))
    assert st == 200, raw
    return json.loads(raw)


def test_inbox_read_state_preferences_and_recovery_through_nginx(stack):
    """The user's server state in the distributed stack: notifications from
    HTTP and from the Kafka topic are stored once in the shared MongoDB inbox
    (the topic's one group forwards each record to the user's instance),
    listed and marked read through nginx, replayed after a reconnect with
    since= and then live, preferences stored and honoured; each stored
    notification is on notification-events once."""
    tag = uuid.uuid4().hex[:8]
    u = f"inbox{tag}"
    prefs = {"channels": {"purchase_notification": {"push": False}},
             "quiet_hours": None}
    st, raw, _ = http("PUT", f"{stack.public}/users/{u}/preferences", prefs,
                      headers=bearer(stack, u))
    assert st == 200, raw
    st, raw, _ = http("GET", f"{stack.public}/users/{u}/preferences", headers=bearer(stack, u))
    assert st == 200 and json.loads(raw)["channels"]["purchase_notification"] == {"push": False}
    st, _, _ = http("GET", f"{stack.public}/users/{u}/preferences",
                    headers=bearer(stack, "mallory"))
    assert st == 403

    def purchase(i):
        return {"order_id": f"O-{i}", "buyer_id": u, "shop_owner_id": "shop",
                "product_name": "Coffee", "amount": 15.99, "currency": "USD",
                "status": "confirmed"}

    async def first_session():
        async with notif_socket(stack, u) as ws:
            st, raw, _ = await in_thread(lambda: http(
                "POST", f"{stack.internal}/notifications/purchase?user_id={u}", purchase(1),
                headers=stack.auth))
            assert st == 200 and json.loads(raw)["delivered"] == 1, raw
            assert (await recv_json(ws))["payload"]["order_id"] == "O-1"
            rec = json.dumps({"type": "shipping-update", "user_id": u,
                              "payload": {"order_id": "O-2", "status": "shipped"}})
            await in_thread(lambda: produce(stack, "notifications", rec, key=u))
            assert (await recv_json(ws))["payload"]["order_id"] == "O-2"
            await assert_silent(ws, 0.5)

    run(first_session())
    got = inbox(stack, u)
    assert [n["payload"]["order_id"] for n in got["notifications"]] == ["O-2", "O-1"]
    assert got["unread"] == 2
    ids = [n["id"] for n in got["notifications"]]
    assert ids[0] > ids[1]
    # The inbox is the same whichever instance answers: with no user_id
    # (the token names the user) nginx does not hash to the user's instance.
    st, raw, _ = http("GET", f"{stack.public}/notifications", headers=bearer(stack, u))
    assert st == 200 and json.loads(raw)["notifications"] == got["notifications"], raw

    st, raw, _ = http("POST", f"{stack.public}/notifications/read?user_id={u}",
                      {"ids": [ids[1]]}, headers=bearer(stack, u))
    assert st == 200 and json.loads(raw) == {"unread": 1}, raw
    assert [n["read"] for n in inbox(stack, u)["notifications"]] == [False, True]
    # Someone else's ids change nothing.
    st, raw, _ = http("POST", f"{stack.public}/notifications/read?user_id=mallory{tag}",
                      {"ids": ids}, headers=bearer(stack, f"mallory{tag}"))
    assert st == 200 and json.loads(raw) == {"unread": 0}, raw
    assert inbox(stack, u)["unread"] == 1

    # Offline: two more, then a reconnect with since= replays them in order
    # and goes live.
    for i in (3, 4):
        st, raw, _ = http("POST", f"{stack.internal}/notifications/purchase?user_id={u}",
                          purchase(i), headers=stack.auth)
        assert st == 200 and json.loads(raw)["delivered"] == 0, raw

    async def recovery():
        url = (f"{stack.ws}/notifications/subscribe?user_id={u}&since={ids[0]}"
               f"&token={token(stack, u)}")
        async with websockets.connect(url, open_timeout=15) as ws:
            replay = [await recv_json(ws), await recv_json(ws)]
            assert [f["payload"]["order_id"] for f in replay] == ["O-3", "O-4"]
            assert replay[0]["id"] < replay[1]["id"] and replay[0]["id"] > ids[0]
            await in_thread(lambda: http(
                "POST", f"{stack.internal}/notifications/purchase?user_id={u}", purchase(5),
                headers=stack.auth))
            live = await recv_json(ws)
            assert live["payload"]["order_id"] == "O-5" and live["id"] > replay[1]["id"]
            await assert_silent(ws, 0.5)

    run(recovery())
    assert inbox(stack, u)["unread"] == 4

    # notification-events: each of the five once, in order, keyed by the user,
    # with the preference (push muted for purchases) in the headers.
    mine = []
    def collect():
        mine[:] = [e for e in tail_events(stack, 100000, idle="3s") if e[2]["user_id"] == u]
        return len(mine) >= 5
    wait_until(collect, timeout=60, what="five events for the user")
    assert len(mine) == 5, mine
    assert [e[2]["payload"]["order_id"] for e in mine] == ["O-1", "O-2", "O-3", "O-4", "O-5"]
    assert all(e[0] == u for e in mine)
    assert [e[2]["id"] for e in mine] == sorted(e[2]["id"] for e in mine)
    assert list(mine[0][2]) == ["id", "user_id", "notification_type", "timestamp", "payload"]
    purchases = [e for e in mine if e[2]["notification_type"] == "purchase_notification"]
    assert all("push" in e[1].get("notifd-muted", "").split(",") for e in purchases), purchases
    assert mine[0][1].get("notifd-delivered") == "1" and mine[2][1].get("notifd-delivered") == "0"


def test_web_push_for_a_user_with_no_socket(stack):
    """A user's browser subscription is stored through nginx in MongoDB (the
    webpush role); a notification stored while the user has no socket goes
    from notification-events to the push service (VAPID verified, payload
    decrypted by http_ece), one that reached a socket does not."""
    wp = pytest.importorskip("test_webpush", reason="the Web Push test helpers (PyPI venv)")
    svc = wp.PushService()
    try:
        tag = uuid.uuid4().hex[:8]
        u = f"push{tag}"
        sub = svc.subscription(u)
        st, raw, _ = http("POST", f"{stack.public}/push/subscriptions", sub,
                          headers=bearer(stack, u))
        assert st == 201, raw
        st, raw, _ = http("GET", f"{stack.public}/push/subscriptions", headers=bearer(stack, u))
        assert st == 200 and json.loads(raw)["subscriptions"] == [{"endpoint": sub["endpoint"]}]
        st, raw, _ = http("GET", f"{stack.public}/push/vapid-public-key")
        assert st == 200 and json.loads(raw)["public_key"]

        ship = {"order_id": f"P-{tag}", "status": "shipped"}
        st, raw, _ = http("POST", f"{stack.internal}/notifications/shipping-update?user_id={u}",
                          ship, headers=stack.auth)
        assert st == 200 and json.loads(raw)["delivered"] == 0, raw
        wait_until(lambda: len(svc.calls()) == 1, timeout=60, what="the push")
        rec = svc.calls()[0]
        assert "error" not in rec, rec.get("error")
        pushed = json.loads(rec["plain"])
        assert pushed["notification_type"] == "shipping_update_notification"
        assert pushed["payload"]["order_id"] == f"P-{tag}"
        assert pushed["id"] == inbox(stack, u)["notifications"][0]["id"]

        async def online():
            async with notif_socket(stack, u) as ws:
                st, raw, _ = await in_thread(lambda: http(
                    "POST", f"{stack.internal}/notifications/shipping-update?user_id={u}",
                    ship, headers=stack.auth))
                assert st == 200 and json.loads(raw)["delivered"] == 1, raw
                await recv_json(ws)

        run(online())
        # The event of the delivered one has been consumed when the metric moves.
        wait_until(lambda: stack.metric("WP", "webpush_events_total", result="delivered") >= 1,
                   timeout=60, what="webpush passed over the delivered notification")
        assert len(svc.calls()) == 1
    finally:
        svc.stop()


def test_internal_routes_are_not_public_and_need_the_token(stack):
    (a, b), = pairs(1)
    body = {"content": "x", "stream_id": stream_id(a, b), "sender_id": a, "receiver_id": b,
            "message_id": "m1", "created_at": "2026-01-02T03:04:05Z"}
    q = f"?stream_id={stream_id(a, b)}"
    assert http("POST", stack.public + "/chat/forward-to-websocket" + q, body)[0] == 404
    assert http("POST", stack.public + f"/notifications/chat?user_id={b}", body)[0] == 404
    assert http("PUT", stack.public + f"/email/users/{b}", {"email": "x@y.z"})[0] == 404
    assert http("POST", stack.internal + "/chat/forward-to-websocket" + q, body)[0] == 401
    assert http("POST", stack.internal + f"/notifications/chat?user_id={b}", body)[0] == 401
    st, raw, _ = http("POST", stack.internal + "/chat/forward-to-websocket" + q, body,
                      headers=stack.auth)
    assert st == 200 and json.loads(raw)["delivered"] == 0, raw


def chat_socket_v2(stack, me, peer):
    q = f"stream_id={stream_id(me, peer)}&sender_id={me}&receiver_id={peer}"
    return websockets.connect(f"{stack.ws}{CHAT_CHANNEL}?{q}&token={token(stack, me)}",
                              open_timeout=15, subprotocols=["notifd.chat.v2"])


async def placed_on(stack, ws_cm):
    """Opens a chat socket via nginx; (socket, the chat_ws instance holding it)."""
    before = {w: stack.metric(w, "notifd_ws_connections", channel=CHAT_CHANNEL)
              for w in ("W1", "W2")}
    ws = await ws_cm.__aenter__()
    for _ in range(100):
        now = {w: stack.metric(w, "notifd_ws_connections", channel=CHAT_CHANNEL)
               for w in ("W1", "W2")}
        grown = [w for w in now if now[w] > before[w]]
        if len(grown) == 1:
            return ws, grown[0]
        await asyncio.sleep(0.05)
    raise AssertionError("socket not found on W1 or W2")


def test_presence_reaches_peers_on_the_other_chat_ws(stack):
    """alice's socket is on W1 (her conversation with carol); bob's v2
    socket on his stream with alice is on W2: W1's transitions reach W2
    through Kafka and bob sees alice online, then offline after the grace
    (5 s, config/distributed/chat_ws.yaml)."""
    tag = uuid.uuid4().hex[:8]
    alice = f"alice{tag}"

    async def scenario():
        bob = None
        for k in range(24):  # a bob whose stream with alice hashes to W2
            ws, w = await placed_on(stack, chat_socket_v2(stack, f"bob{tag}{k}", alice))
            if w == "W2":
                bob = ws
                break
            await ws.close()
        carol = None
        for k in range(24):  # a carol whose stream with alice hashes to W1
            ws, w = await placed_on(stack, chat_socket(stack, f"carol{tag}{k}", alice))
            await ws.close()
            if w == "W1":
                carol = f"carol{tag}{k}"
                break
        assert bob and carol, "no stream placement found on both instances"
        try:
            assert await recv_json(bob) == {"type": "presence", "user_id": alice,
                                            "online": False}
            figures = []
            for _ in range(3):
                t0 = time.monotonic()
                a = await chat_socket(stack, alice, carol).__aenter__()
                t1 = time.monotonic()
                assert await recv_json(bob, 15) == {"type": "presence", "user_id": alice,
                                                    "online": True}
                t2 = time.monotonic()
                await a.close()
                t3 = time.monotonic()
                assert await recv_json(bob, 30) == {"type": "presence", "user_id": alice,
                                                    "online": False}
                t4 = time.monotonic()
                assert t4 - t3 >= 4.5  # the grace period
                figures.append((t2 - t0, t2 - t1, t4 - t3))
            print("\npresence W1 -> W2 (s): connect->online, 101->online, close->offline: " +
                  "; ".join(f"{a:.3f}, {b:.3f}, {c:.3f}" for a, b, c in figures))
        finally:
            await bob.close()

    run(scenario())
    assert stack.metric("W2", "chat_ws_presence_records_total", result="consumed") >= 6
    assert stack.metric("W1", "chat_ws_presence_records_total", result="invalid") == 0


def handshake_status(exc):
    """The HTTP status of a refused websocket handshake (websockets 10 and 11+)."""
    return getattr(exc, "status_code", None) or getattr(getattr(exc, "response", None),
                                                        "status_code", None)


def test_a_chat_ws_instance_down_then_back(stack):
    """W1 stopped (SIGTERM): its sockets close with 1001 and reconnects for
    its streams get 502 until it is back (nginx does not move them to W2);
    messages for those streams are still stored and acknowledged (the forward
    fails over to W2, which has no socket: delivered 0) and are in the
    history; W2's streams go on live.  W1 restarted: its clients reconnect to
    it, the history has what they missed, and every stream is live again on
    one instance (no stream split between a socket on one instance and its
    forwards on the other)."""
    users = pairs(STREAMS)
    h_before = stack.metric("H", "chat_persistence_change_consumer_success_event_total",
                            event_type="c")
    w2_missed = stack.metric("W2", "chat_ws_forwards_total", result="no_subscribers")
    w1_dir = os.path.join(stack.dir, "W1")

    async def scenario():
        socks = list(await asyncio.gather(*(chat_socket(stack, b, a).__aenter__()
                                            for a, b in users)))
        try:
            with open(os.path.join(w1_dir, "pid")) as f:
                os.kill(int(f.read()), signal.SIGTERM)
            await in_thread(lambda: wait_until(
                lambda: os.path.exists(os.path.join(w1_dir, "rc")), what="W1 exit", timeout=30))
            with open(os.path.join(w1_dir, "rc")) as f:
                assert f.read().strip() == "0"
            # the close frames W1 sent before exiting
            await asyncio.gather(*(asyncio.wait_for(asyncio.shield(ws.wait_closed()), 2)
                                   for ws in socks), return_exceptions=True)
            on_w1 = [i for i, ws in enumerate(socks) if ws.close_code is not None]
            assert all(socks[i].close_code == 1001 for i in on_w1)
            assert 0 < len(on_w1) < STREAMS
            for i in on_w1:
                a, b = users[i]
                with pytest.raises(websockets.exceptions.InvalidHandshake) as refused:
                    await chat_socket(stack, b, a).__aenter__()
                assert handshake_status(refused.value) == 502

            missed = {}
            for i, (a, b) in enumerate(users):
                m = await in_thread(lambda a=a, b=b: persist(stack, a, b, "while W1 is down"))
                if i in on_w1:
                    missed[i] = m
                else:
                    assert (await recv_json(socks[i]))["message_id"] == m["message_id"]
            await in_thread(lambda: wait_until(lambda: stack.metric(
                "H", "chat_persistence_change_consumer_success_event_total", event_type="c")
                == h_before + STREAMS, what="all acknowledged", timeout=30))
            assert stack.metric("W2", "chat_ws_forwards_total",
                                result="no_subscribers") == w2_missed + len(on_w1)

            r = await in_thread(lambda: subprocess.run([STACK_SH, "restart", stack.dir, "W1"],
                                                       capture_output=True, timeout=120))
            assert r.returncode == 0, r.stderr.decode()
            for i in on_w1:
                a, b = users[i]
                socks[i] = await chat_socket(stack, b, a).__aenter__()
                st, raw, _ = await in_thread(lambda a=a, b=b: history(stack, b, a, "&limit=1"))
                assert st == 200 and json.loads(raw)["messages"] == [missed[i]]
            assert stack.metric("W1", "notifd_ws_connections", channel=CHAT_CHANNEL) == len(on_w1)
            for i, (a, b) in enumerate(users):
                m = await in_thread(lambda a=a, b=b: persist(stack, a, b, "W1 is back"))
                assert (await recv_json(socks[i]))["message_id"] == m["message_id"]
        finally:
            await asyncio.gather(*(ws.close() for ws in socks), return_exceptions=True)

    run(scenario())


def test_every_notifd_exits_0_on_sigterm(stack):
    r = subprocess.run([STACK_SH, "stop", stack.dir], capture_output=True, timeout=180)
    assert r.returncode == 0, r.stderr.decode()
    for inst in stack.instances:
        with open(os.path.join(stack.dir, inst, "rc")) as f:
            rc = f.read().strip()
        assert rc == "0", f"{inst} exited {rc}:\n" + stack.log(inst)[-3000:]
