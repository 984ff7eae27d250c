"""chat_ws's typed events on the opt-in subprotocol notifd.chat.v2, against a
running notifd with real websocket clients (python3-websockets) and tokens
made by PyJWT.

Covers: v1 and v2 sockets on one stream (v1 frames byte for byte the bare
Go ChatMessage, v2 the message event around the same bytes; one publish per
forward while a stream has no v2 socket, two with one), POST
/chat/forward-event read receipts (internal token; 401 without; bad events
400; v1 sockets untouched), typing relayed to the peer's sockets only and
rate-limited, bad client frames closing with 1003 / 1008 / 1009 (v1 frames
still ignored), presence online/offline with the grace period (a reconnect
within it is not seen), presence from a socket on another stream, the
initial presence on open, auth.mode users where the sender is the token's
subject, and presence across two chat_ws processes sharing an embedded bus
(transitions, and expiry after one is killed).
"""
import asyncio
import json
import os
import signal
import time

import jwt
import pytest
import websockets

from conftest import (apost, checked_exits, http, metric, plugin_yaml, run, stream_id,
                      wait_until)

V2 = "notifd.chat.v2"
SECRET = "chat-events-secret"
INTERNAL = "chat-events-internal"
SEED_YAML = f"auth: {{mode: none, internal_token: {INTERNAL}}}\n"
USERS_YAML = f"auth: {{mode: users, jwt_secret: {SECRET}, internal_token: {INTERNAL}}}\n"
ZERO_TIME = "0001-01-01T00:00:00Z"
CHANNEL = "/chat/subscribe-websocket"


@pytest.fixture
def notifd_factory(notifd_factory):
    yield from checked_exits(notifd_factory)


def start(factory, extra_yaml=SEED_YAML, name="notifd", **config):
    config.setdefault("presence_grace", "300ms")
    config.setdefault("typing_interval", "500ms")
    return factory(plugins_yaml=plugin_yaml("chat_ws", **config), extra_yaml=extra_yaml,
                   name=name)


def token(sub):
    return jwt.encode({"sub": sub, "exp": int(time.time()) + 600}, SECRET, algorithm="HS256")


def sock(n, me, peer, v2=True, tok=None, sender=None, receiver=None):
    """A chat socket of `me` talking to `peer` (sender_id/receiver_id may be
    given in the other order, as the host allows under token auth)."""
    sender, receiver = sender or me, receiver or peer
    q = f"stream_id={stream_id(me, peer)}&sender_id={sender}&receiver_id={receiver}"
    if tok:
        q += f"&token={tok}"
    return websockets.connect(f"{n.ws_url}{CHANNEL}?{q}", open_timeout=10, max_queue=None,
                              subprotocols=[V2] if v2 else None)


def message(i, sender, receiver, content="hi"):
    return {"message_id": f"m{i}", "content": content, "created_at": ZERO_TIME,
            "stream_id": stream_id(sender, receiver), "sender_id": sender,
            "receiver_id": receiver}


def go_json(msg):
    keys = ["message_id", "content", "created_at", "stream_id", "sender_id", "receiver_id"]
    return "{" + ",".join(f"{json.dumps(k)}:{json.dumps(msg[k])}" for k in keys) + "}"


async def recv(ws, timeout=5):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def silent(ws, wait=0.3):
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(ws.recv(), wait)


async def closed_with(ws, code):
    with pytest.raises(websockets.exceptions.ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 5)
    assert ws.close_code == code, (ws.close_code, ws.close_reason)


def presence(user, online):
    return {"type": "presence", "user_id": user, "online": online}


async def forward(n, msg, headers=None):
    st, body, _ = await apost(f"{n.url}/chat/forward-to-websocket", msg, headers)
    return st, json.loads(body)


async def forward_event(n, body, headers=None):
    st, raw, _ = await apost(f"{n.url}/chat/forward-event", body, headers)
    return st, json.loads(raw)


def publishes(n):
    return metric(n, "notifd_ws_publishes_total", channel=CHANNEL)


# ---- messages ---------------------------------------------------------------

def test_v1_and_v2_sockets_on_one_stream(notifd_factory):
    n = start(notifd_factory)

    async def scenario():
        async with sock(n, "alice", "bob", v2=False) as v1:
            # a stream with v1 sockets only: one publish per forward, as before
            before = publishes(n)
            msg = message(0, "alice", "bob", "<v1 only> & more")
            st, body = await forward(n, msg)
            assert st == 200 and body == {"delivered": 1, "stream_id": msg["stream_id"]}
            assert await asyncio.wait_for(v1.recv(), 5) == go_json(msg).replace(
                "<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            assert publishes(n) == before + 1

            async with sock(n, "bob", "alice") as v2:
                assert v2.subprotocol == V2
                # initial presence: alice has a socket, so she is online
                assert await recv(v2) == presence("alice", True)
                before = publishes(n)
                msg = message(1, "bob", "alice", "hello")
                st, body = await forward(n, msg)
                assert st == 200 and body == {"delivered": 2, "stream_id": msg["stream_id"]}
                raw1 = await asyncio.wait_for(v1.recv(), 5)
                raw2 = await asyncio.wait_for(v2.recv(), 5)
                assert raw1 == go_json(msg)  # byte for byte the bare frame
                assert raw2 == '{"type":"message","message":' + go_json(msg) + "}"
                assert json.loads(raw2) == {"type": "message", "message": msg}
                assert publishes(n) == before + 2  # one encoding per kind
                await silent(v1, 0.1)
                await silent(v2, 0.1)
            # the v2 socket is gone: back to the single publish
            before = publishes(n)
            st, body = await forward(n, message(2, "alice", "bob"))
            assert body["delivered"] == 1 and publishes(n) == before + 1

    run(scenario())
    assert metric(n, "chat_ws_v2_events_total", type="message") == 1


# ---- read receipts ------------------------------------------------------------

def test_forward_event_read_receipts(notifd_factory):
    n = start(notifd_factory, forward_auth="internal")
    auth = {"X-Notifd-Internal-Token": INTERNAL}
    sid = stream_id("alice", "bob")
    read = {"stream_id": sid, "event": {"type": "read", "user_id": "bob", "message_id": "m7"}}

    async def scenario():
        async with sock(n, "alice", "bob") as a, sock(n, "alice", "bob", v2=False) as v1, \
                sock(n, "bob", "alice") as b:
            assert await recv(a) == presence("bob", False)
            assert await recv(a) == presence("bob", True)
            assert await recv(b) == presence("alice", True)
            st, body = await forward_event(n, read)
            assert st == 401, body
            st, body = await forward_event(n, read, {"X-Notifd-Internal-Token": "nope"})
            assert st == 401, body
            st, body = await forward_event(n, read, auth)
            assert st == 200 and body == {"delivered": 2}, body
            for ws in (a, b):
                assert await recv(ws) == {"type": "read", "user_id": "bob", "message_id": "m7"}
            await silent(v1)
            bad = [
                {"stream_id": sid, "event": {"type": "typing", "user_id": "bob"}},
                {"stream_id": sid, "event": {"type": "read", "user_id": "bob"}},
                {"stream_id": sid, "event": {"type": "read", "user_id": "", "message_id": "m"}},
                {"stream_id": sid, "event": {"type": "read", "user_id": 5, "message_id": "m"}},
                {"stream_id": sid, "event": "read"},
                {"event": read["event"]},
                {"stream_id": "", "event": read["event"]},
                [read],
            ]
            for body in bad:
                st, resp = await forward_event(n, body, auth)
                assert st == 400 and "error" in resp, (body, resp)
            st, raw, _ = await apost(f"{n.url}/chat/forward-event", b"{not json", auth)
            assert st == 400, raw
            await silent(a, 0.1)
            # another stream: nobody there
            st, body = await forward_event(n, dict(read, stream_id="0" * 16), auth)
            assert st == 200 and body == {"delivered": 0}

    run(scenario())
    assert metric(n, "chat_ws_v2_events_total", type="read") == 2


# ---- typing -------------------------------------------------------------------

def test_typing_is_relayed_to_the_peer_and_rate_limited(notifd_factory):
    n = start(notifd_factory)

    async def scenario():
        async with sock(n, "alice", "bob") as a, sock(n, "alice", "bob") as a2, \
                sock(n, "bob", "alice") as b, sock(n, "bob", "alice", v2=False) as b1:
            for ws in (a, a2):
                assert await recv(ws) == presence("bob", False)
                assert await recv(ws) == presence("bob", True)
            assert await recv(b) == presence("alice", True)
            await a.send('{"type":"typing"}')
            assert await recv(b) == {"type": "typing", "user_id": "alice"}
            await a.send('{"type":"typing","extra":[1,2]}')  # within the interval: dropped
            await a.send('{"type":"typing"}')
            await silent(b)
            await silent(a)   # never echoed to the typist's own sockets
            await silent(a2)
            await silent(b1)  # v1 sockets get no events
            # a2 is another socket: its own allowance
            await a2.send('{"type":"typing"}')
            assert await recv(b) == {"type": "typing", "user_id": "alice"}
            await asyncio.sleep(0.5)  # the typing_interval under test
            await a.send('{"type":"typing"}')
            assert await recv(b) == {"type": "typing", "user_id": "alice"}
            await b.send('{"type":"typing"}')
            assert await recv(a) == {"type": "typing", "user_id": "bob"}
            assert await recv(a2) == {"type": "typing", "user_id": "bob"}

    run(scenario())
    assert metric(n, "chat_ws_client_frames_total", result="typing") == 4
    assert metric(n, "chat_ws_client_frames_total", result="typing_dropped") == 2
    assert metric(n, "chat_ws_v2_events_total", type="typing") == 5


# ---- bad client frames ----------------------------------------------------------

@pytest.mark.parametrize("frame,code", [
    (b"\x00\x01binary", 1003),
    ("x" * 1025, 1009),
    ('{"type":"typing","pad":"' + "y" * 1000 + '"}', 1009),
    ("not json", 1008),
    ("[1,2]", 1008),
    ('{"type":5}', 1008),
    ('{"kind":"typing"}', 1008),
    ('{"type":"read","message_id":"m1"}', 1008),
    ('{"type":"nonsense"}', 1008),
])
def test_bad_frames_from_a_v2_client_close_it(notifd_factory, frame, code):
    n = start(notifd_factory)

    async def scenario():
        async with sock(n, "alice", "bob") as a, sock(n, "alice", "bob", v2=False) as v1:
            assert await recv(a) == presence("bob", False)
            await v1.send(frame)  # v1: ignored, as in the Go service
            await a.send(frame)
            await closed_with(a, code)
            st, body = await forward(n, message(0, "alice", "bob"))
            assert st == 200 and body["delivered"] == 1
            assert (await recv(v1))["message_id"] == "m0"

    run(scenario())
    assert n.proc.poll() is None


# ---- presence -------------------------------------------------------------------

def test_presence_with_grace_and_initial_state(notifd_factory):
    n = start(notifd_factory, presence_grace="400ms")

    async def scenario():
        async with sock(n, "bob", "alice") as b:
            assert await recv(b) == presence("alice", False)  # initial: nobody
            # alice on another stream (with carol), v1: online for bob too
            a = await sock(n, "alice", "carol", v2=False).__aenter__()
            assert await recv(b) == presence("alice", True)
            # a reload within the grace: nobody sees her leave
            await a.close()
            a = await sock(n, "alice", "bob").__aenter__()
            assert await recv(a) == presence("bob", True)
            await silent(b, 0.6)
            await a.close()
            t0 = time.monotonic()
            assert await recv(b) == presence("alice", False)
            assert time.monotonic() - t0 >= 0.3  # only after the grace
            # a new v2 socket of alice's gets bob's current state
            async with sock(n, "alice", "bob") as a:
                assert await recv(a) == presence("bob", True)
                assert await recv(b) == presence("alice", True)
            assert await recv(b) == presence("alice", False)
        # bob gone too: the registry is empty again
        await asyncio.get_running_loop().run_in_executor(None, lambda: wait_until(
            lambda: metric(n, "chat_ws_presence_online_users") == 0, what="nobody online"))

    run(scenario())
    assert metric(n, "chat_ws_presence_changes_total", online="true") >= 3


def test_users_mode_sender_is_the_token_subject(notifd_factory):
    n = start(notifd_factory, extra_yaml=USERS_YAML)
    auth = {"X-Notifd-Internal-Token": INTERNAL}

    async def scenario():
        # bob subscribes with sender_id=alice&receiver_id=bob and his own
        # token: he is the socket's user, not sender_id.
        async with sock(n, "alice", "bob", tok=token("alice")) as a, \
                sock(n, "bob", "alice", tok=token("bob"), sender="alice", receiver="bob") as b:
            assert await recv(a) == presence("bob", False)
            assert await recv(a) == presence("bob", True)
            assert await recv(b) == presence("alice", True)
            await b.send('{"type":"typing"}')
            assert await recv(a) == {"type": "typing", "user_id": "bob"}
            await silent(b)
            await a.send('{"type":"typing"}')
            assert await recv(b) == {"type": "typing", "user_id": "alice"}
            read = {"stream_id": stream_id("alice", "bob"),
                    "event": {"type": "read", "user_id": "bob", "message_id": "m1"}}
            st, body = await forward_event(n, read)
            assert st == 401, body
            st, body = await forward_event(n, read, {"Authorization": "Bearer " + token("bob")})
            assert st == 401, body  # a user's token is not the internal one
            st, body = await forward_event(n, read, auth)
            assert st == 200 and body == {"delivered": 2}
            assert (await recv(a))["type"] == "read"
            assert (await recv(b))["type"] == "read"
            st, body = await forward(n, message(3, "alice", "bob"), auth)
            assert st == 200 and body["delivered"] == 2
            assert (await recv(a))["message"]["message_id"] == "m3"

    run(scenario())


def test_presence_across_two_processes_on_one_bus(notifd_factory, tmp_path):
    """Two chat_ws processes sharing an embedded bus file: the presence topic
    carries each one's transitions; the users of one that stops answering
    (SIGSTOP, as a crash would) expire elsewhere, and come back with its
    next announcement."""
    bus = os.path.join(str(tmp_path), "shared-bus.db")
    yaml = SEED_YAML + f"bus: {{embedded: {{path: {bus}, poll_interval: 20ms}}}}\n"
    cfg = dict(presence_grace="200ms", presence_refresh="300ms", presence_expiry="1500ms")
    w1 = start(notifd_factory, yaml, name="w1", **cfg)
    w2 = start(notifd_factory, yaml, name="w2", **cfg)

    async def scenario():
        async with sock(w2, "bob", "alice") as b:
            assert await recv(b) == presence("alice", False)
            a = await sock(w1, "alice", "carol", v2=False).__aenter__()
            assert await recv(b) == presence("alice", True)
            await a.close()
            assert await recv(b) == presence("alice", False)
            async with sock(w1, "alice", "dave", v2=False):
                assert await recv(b) == presence("alice", True)
                await asyncio.sleep(0.7)  # a couple of W1's refreshes go by
                await silent(b, 0.1)
                w1.proc.send_signal(signal.SIGSTOP)
                try:
                    t0 = time.monotonic()
                    assert await recv(b, timeout=10) == presence("alice", False)
                    assert 1.0 < time.monotonic() - t0 < 5
                    # a new v2 socket on W2 gets the state W2 knows
                    async with sock(w2, "carol", "alice") as c:
                        assert await recv(c) == presence("alice", False)
                finally:
                    w1.proc.send_signal(signal.SIGCONT)
                assert await recv(b, timeout=10) == presence("alice", True)
            assert await recv(b) == presence("alice", False)
        assert metric(w2, "chat_ws_presence_records_total", result="invalid") == 0
        assert metric(w2, "chat_ws_presence_records_total", result="consumed") >= 4

    run(scenario())
