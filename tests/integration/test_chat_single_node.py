"""chat_persistence + chat_change_handler with the real chat_ws and
notifications_ws plugins on the embedded backends (SQLite store with its
transactional outbox, embedded bus and kv).

Covers: POST -> both participants' chat sockets and the receiver's
notification socket (not the sender's); the stored message in the 201 and
in the history; Go binding errors, the stream_id check and limits;
idempotent message ids; history pages; kill -9 before the outbox relay
published and kill -9 with the record undelivered in the bus, both still
delivered after restart; a duplicate record delivered once; malformed
records dead-lettered, tombstone-like and heartbeat records ignored;
exhausted retries close the stream's sockets (only the failed target is
retried) and dead-letter the record.
"""
import asyncio
import json
import subprocess

import pytest
import websockets

from conftest import NOTIFD, apost, built_backends, free_port, http, metric, run, wait_until

TOKEN = "chat-single-node-internal-token"
HOST_YAML = f"auth: {{internal_token: {TOKEN}}}\n"
TOPIC = "chat-persistence-change"

A, B = "sender-a", "receiver-b"
STREAM_AB = "3216fea9031bf845"  # ComputeStreamID(sender-a, receiver-b), contract 2.6


def plugins(persist=None, handler=None, roles=("chat_persistence", "chat_change_handler",
                                                "chat_ws", "notifications_ws")):
    """YAML under `plugins:`; config values are YAML text (flow maps allowed)."""
    cfg = {"chat_persistence": persist or {}, "chat_change_handler": handler or {}}
    out = ""
    for role in roles:
        out += f"  - name: {role}\n"
        c = cfg.get(role) or {}
        if c:
            out += "    config:\n" + "".join(f"      {k}: {v}\n" for k, v in c.items())
    return out


def start(notifd_factory, name="notifd", **kw):
    return notifd_factory(plugins_yaml=plugins(**kw), extra_yaml=HOST_YAML, name=name)


def chat_ws(n, sender=A, receiver=B, stream=STREAM_AB):
    q = f"stream_id={stream}&sender_id={sender}&receiver_id={receiver}"
    return websockets.connect(f"{n.ws_url}/chat/subscribe-websocket?{q}", open_timeout=10,
                              max_size=None)


def notif_ws(n, user):
    return websockets.connect(f"{n.ws_url}/notifications/subscribe?user_id={user}",
                              open_timeout=10, max_size=None)


async def recv_json(ws, timeout=8):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def assert_silent(ws, wait=0.5):
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(ws.recv(), wait)


def msg(content, sender=A, receiver=B, stream=STREAM_AB, **extra):
    return dict({"content": content, "stream_id": stream, "sender_id": sender,
                 "receiver_id": receiver}, **extra)


def post(n, body, path="/chat/messages"):
    st, raw, hdrs = http("POST", n.url + path, body)
    return st, (json.loads(raw) if raw else None), hdrs


def produce(n, value, key=None, topic=TOPIC):
    args = [NOTIFD, "bus", "produce", "-d", n.data_dir]
    if key is not None:
        args += ["-k", key]
    args += [topic, value]
    r = subprocess.run(args, capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr.decode()


def tail(n, topic, count=1, idle="8s"):
    r = subprocess.run([NOTIFD, "bus", "tail", "-d", n.data_dir, "-B", "-f", "-n", str(count), "-t",
                        idle, topic], capture_output=True, timeout=60)
    return [json.loads(line) for line in r.stdout.decode().splitlines() if line.strip()]


def change_record(msg_id, content, sender=A, receiver=B, stream=STREAM_AB):
    doc = {"_id": msg_id, "content": content,
           "created_at": {"$date": {"$numberLong": "1700000000000"}},
           "stream_id": stream, "sender_id": sender, "receiver_id": receiver}
    return json.dumps({"before": None, "after": json.dumps(doc), "op": "c", "ts_ms": 1})


def same_message(got, want):
    keys = ("message_id", "content", "created_at", "stream_id", "sender_id", "receiver_id")
    return all(got[k] == want[k] for k in keys)


# ---------------------------------------------------------------------------

def test_message_reaches_both_chat_sockets_and_the_receivers_notifications(notifd_factory):
    n = start(notifd_factory)

    async def scenario():
        async with chat_ws(n, A, B) as sa, chat_ws(n, B, A) as sb, \
                notif_ws(n, B) as nb, notif_ws(n, A) as na:
            st, stored, hdrs = await apost(n.url + "/chat/messages",
                                           msg("Hello <b>&</b> สวัสดี 🎉"))
            assert st == 201, stored
            stored = json.loads(stored)
            assert len(stored["message_id"]) == 24 and stored["created_at"].endswith("Z")
            assert hdrs.get("Location") == "/chat/messages/" + stored["message_id"]
            for ws in (sa, sb):
                assert same_message(await recv_json(ws), stored)
            note = await recv_json(nb)
            assert note["notification_type"] == "chat_notification"
            assert same_message(note["payload"], stored)
            await assert_silent(na)  # the sender gets no notification
            await assert_silent(sa)  # and exactly one frame
            return stored

    stored = run(scenario())
    st, raw, _ = http("GET", f"{n.url}/chat/streams/{STREAM_AB}/messages")
    assert st == 200
    page = json.loads(raw)
    assert page["next_before"] is None
    assert [m["message_id"] for m in page["messages"]] == [stored["message_id"]]
    assert same_message(page["messages"][0], stored)
    st, raw, _ = http("GET", f"{n.url}/chat/messages/{stored['message_id']}")
    assert st == 200 and json.loads(raw) == stored
    wait_until(lambda: metric(n, "chat_persistence_change_consumer_success_event_total",
                              event_type="c") == 1, what="success metric")
    assert metric(n, "chat_persistence_relay_published_total") == 1


def test_go_path_validation_and_limits(notifd_factory):
    n = start(notifd_factory, persist={"max_content_bytes": 20})
    # The Go path and Go's binding texts.
    st, body, _ = post(n, msg("Hello"), "/chat/persist")
    assert st == 201 and body["content"] == "Hello"
    st, body, _ = post(n, {}, "/chat/persist")
    assert st == 400
    assert body["error"].split("\n") == [
        "Key: 'ChatMessage.Content' Error:Field validation for 'Content' failed on the 'required' tag",
        "Key: 'ChatMessage.ChatMetadata.StreamID' Error:Field validation for 'StreamID' failed on the 'required' tag",
        "Key: 'ChatMessage.ChatMetadata.SenderID' Error:Field validation for 'SenderID' failed on the 'required' tag",
        "Key: 'ChatMessage.ChatMetadata.ReceiverID' Error:Field validation for 'ReceiverID' failed on the 'required' tag",
    ]
    for field in ("content", "stream_id", "sender_id", "receiver_id"):
        st, body, _ = post(n, dict(msg("x"), **{field: ""}))
        assert st == 400 and "failed on the 'required' tag" in body["error"], field
    st, body, _ = post(n, dict(msg("x"), content=5))
    assert st == 400 and "ChatMessage.content of type string" in body["error"]
    st, body, _ = post(n, msg("x", stream="0000000000000000"))
    assert st == 400
    assert body["error"] == ("stream_id: does not match sender_id and receiver_id "
                             f"(expected {STREAM_AB})")
    st, body, _ = post(n, msg("x" * 21))
    assert st == 400 and body["error"].startswith("content: too long")
    st, _, _ = http("POST", n.url + "/chat/messages", b"")
    assert st == 400
    st, _, _ = http("POST", n.url + "/chat/messages", b'{"content":"\xff"}')
    assert st == 400
    # Whitespace passes `required`, as in Go; case-insensitive field names.
    st, body, _ = post(n, {"CONTENT": "  \t ", "Stream_ID": STREAM_AB, "sender_id": A,
                           "receiver_id": B})
    assert st == 201 and body["content"] == "  \t "
    assert metric(n, "chat_persistence_requests_total", result="created") == 2


def test_unverified_stream_ids_are_accepted_when_configured(notifd_factory):
    n = start(notifd_factory, persist={"verify_stream_id": "false"})
    st, body, _ = post(n, msg("x", stream="any-stream"))
    assert st == 201 and body["stream_id"] == "any-stream"


def test_client_message_id_is_idempotent(notifd_factory):
    n = start(notifd_factory)

    async def scenario():
        async with chat_ws(n) as ws:
            st, first, _ = await apost(n.url + "/chat/messages", msg("once", message_id="m-1"))
            assert st == 201
            first = json.loads(first)
            assert first["message_id"] == "m-1"
            st, again, _ = await apost(n.url + "/chat/messages", msg("once", message_id="m-1"))
            assert st == 200 and json.loads(again) == first  # the stored one, not a new one
            st, other, _ = await apost(n.url + "/chat/messages", msg("different", message_id="m-1"))
            assert st == 409, other
            assert same_message(await recv_json(ws), first)
            await assert_silent(ws, 1.0)  # stored once, delivered once

    run(scenario())
    st, raw, _ = http("GET", f"{n.url}/chat/streams/{STREAM_AB}/messages")
    assert [m["content"] for m in json.loads(raw)["messages"]] == ["once"]
    assert metric(n, "chat_persistence_requests_total", result="existing") == 1
    assert metric(n, "chat_persistence_requests_total", result="conflict") == 1


def test_history_pages_newest_first(notifd_factory):
    n = start(notifd_factory)
    sent = []
    for i in range(7):
        st, body, _ = post(n, msg(f"m{i}"))
        assert st == 201
        sent.append(body)
    other = "aeaf33db80dab524"  # user-1 / user-2: another stream stays out
    assert post(n, msg("elsewhere", "user-1", "user-2", other))[0] == 201
    url = f"{n.url}/chat/streams/{STREAM_AB}/messages"
    got, cursor, pages = [], None, 0
    while True:
        st, raw, _ = http("GET", url + "?limit=3" + (f"&before={cursor}" if cursor else ""))
        assert st == 200
        page = json.loads(raw)
        assert len(page["messages"]) <= 3
        got += page["messages"]
        pages += 1
        cursor = page["next_before"]
        if cursor is None:
            break
    assert pages == 3
    assert [m["content"] for m in got] == [f"m{i}" for i in reversed(range(7))]
    assert got == list(reversed(sent))
    # A window between two cursors, both exclusive: next_before of a page
    # is the position of its last (oldest) message.
    st, raw, _ = http("GET", url + "?limit=2")
    page2 = json.loads(raw)
    st, raw, _ = http("GET", url + "?limit=5")
    page5 = json.loads(raw)
    st, raw, _ = http("GET", url + f"?before={page2['next_before']}&after={page5['next_before']}")
    assert [m["content"] for m in json.loads(raw)["messages"]] == ["m4", "m3"]
    # A bare time is inclusive: after= the newest created_at still has it.
    st, raw, _ = http("GET", url + "?after=" + got[0]["created_at"])
    assert got[0]["message_id"] in [m["message_id"] for m in json.loads(raw)["messages"]]
    # after= a time before everything: all of them.
    st, raw, _ = http("GET", url + "?after=2000-01-01T00:00:00Z&limit=200")
    assert len(json.loads(raw)["messages"]) == 7
    # limit above the maximum is capped; malformed inputs are 400.
    assert len(json.loads(http("GET", url + "?limit=100000")[1])["messages"]) == 7
    for q in ("?limit=0", "?limit=-1", "?limit=abc", "?before=!!!", "?after=bm90LWEtY3Vyc29y"):
        st, raw, _ = http("GET", url + q)
        assert st == 400 and "error" in json.loads(raw), q
    st, raw, _ = http("GET", f"{n.url}/chat/messages/no-such-id")
    assert st == 404 and json.loads(raw) == {"error": "message not found"}
    st, raw, _ = http("GET", f"{n.url}/chat/streams/nobody/messages")
    assert st == 200 and json.loads(raw) == {"messages": [], "next_before": None}


# ---- crash safety: chat_ws/notifications_ws in one process (W), ----------
# ---- chat_persistence/chat_change_handler in another (H) so the  ----------
# ---- sockets stay connected while H is killed and restarted.     ----------

WS_ROLES = ("chat_ws", "notifications_ws")
PH_ROLES = ("chat_persistence", "chat_change_handler")


def handler_to(w, **extra):
    cfg = {"chat_ws_url": w.url, "notifications_url": w.url,
           "retry": "{max_attempts: 1000, initial_interval: 200ms, max_interval: 200ms, jitter: 0}"}
    cfg.update(extra)
    return cfg


def test_kill9_before_the_outbox_is_relayed_still_delivers(notifd_factory):
    w = notifd_factory(plugins_yaml=plugins(roles=WS_ROLES), extra_yaml=HOST_YAML, name="w")

    async def scenario():
        async with chat_ws(w, A, B) as sa, chat_ws(w, B, A) as sb, notif_ws(w, B) as nb:
            h1 = notifd_factory(plugins_yaml=plugins(persist={"relay_delay": "1h"},
                                                     handler=handler_to(w), roles=PH_ROLES),
                                extra_yaml=HOST_YAML, name="h")
            st, stored, _ = await apost(h1.url + "/chat/messages", msg("survives kill -9"))
            assert st == 201
            stored = json.loads(stored)
            await assert_silent(sa, 0.5)  # committed, not yet relayed
            h1.kill9()
            h2 = notifd_factory(plugins_yaml=plugins(handler=handler_to(w), roles=PH_ROLES),
                                extra_yaml=HOST_YAML, name="h")
            for ws in (sa, sb):
                assert same_message(await recv_json(ws), stored)
            assert same_message((await recv_json(nb))["payload"], stored)
            await assert_silent(sa)
            return h2

    h2 = run(scenario())
    assert metric(h2, "chat_persistence_relay_published_total") == 1
    st, raw, _ = http("GET", f"{h2.url}/chat/streams/{STREAM_AB}/messages")
    assert [m["content"] for m in json.loads(raw)["messages"]] == ["survives kill -9"]


def test_kill9_with_the_record_undelivered_in_the_bus_still_delivers(notifd_factory):
    w = notifd_factory(plugins_yaml=plugins(roles=WS_ROLES), extra_yaml=HOST_YAML, name="w")
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: every forward fails

    async def scenario():
        async with chat_ws(w) as sa, notif_ws(w, B) as nb:
            h1 = notifd_factory(plugins_yaml=plugins(handler=handler_to(
                w, chat_ws_url=dead, notifications_url=dead), roles=PH_ROLES),
                extra_yaml=HOST_YAML, name="h")
            st, stored, _ = await apost(h1.url + "/chat/messages", msg("retried across a crash"))
            assert st == 201
            stored = json.loads(stored)
            await asyncio.get_running_loop().run_in_executor(None, lambda: wait_until(
                lambda: metric(h1, "chat_persistence_change_consumer_failed_event_total") >= 2,
                what="failed attempts"))
            h1.kill9()
            h2 = notifd_factory(plugins_yaml=plugins(handler=handler_to(w), roles=PH_ROLES),
                                extra_yaml=HOST_YAML, name="h")
            assert same_message(await recv_json(sa), stored)
            assert same_message((await recv_json(nb))["payload"], stored)
            await assert_silent(sa)
            return h2

    h2 = run(scenario())
    wait_until(lambda: metric(h2, "chat_persistence_change_consumer_success_event_total",
                              event_type="c") == 1, what="success after restart")


# ---- records injected with the operator tool ------------------------------

def test_duplicate_record_is_delivered_once(notifd_factory):
    n = start(notifd_factory)
    key = json.dumps({"id": json.dumps("dup-1")})
    record = change_record("dup-1", "Duplicated message from kafka")

    async def scenario():
        async with chat_ws(n) as ws, notif_ws(n, B) as nb:
            await asyncio.get_running_loop().run_in_executor(None, lambda: produce(n, record, key))
            first = await recv_json(ws)
            assert first["message_id"] == "dup-1"
            assert first["content"] == "Duplicated message from kafka"
            assert first["created_at"] == "2023-11-14T22:13:20Z"
            assert (await recv_json(nb))["payload"]["message_id"] == "dup-1"
            await asyncio.get_running_loop().run_in_executor(None, lambda: produce(n, record, key))
            await asyncio.get_running_loop().run_in_executor(None, lambda: wait_until(
                lambda: metric(n, "chat_persistence_change_consumer_dropped_event_total",
                               dropped_reason="dropped_from_event_store_validation") == 1,
                what="duplicate dropped"))
            await assert_silent(ws)
            await assert_silent(nb)

    run(scenario())
    assert metric(n, "chat_persistence_change_consumer_success_event_total", event_type="c") == 1


def test_malformed_records_are_dead_lettered_and_non_changes_ignored(notifd_factory):
    n = start(notifd_factory)
    bad = [
        ('{"before":null,"after":', "k1"),                                     # truncated
        ('{"op":"c","after":{"_id":"x","content":"y"}}', "k2"),                # after as object
        ('{"op":"c","after":"{\\"_id\\":\\"x\\"}"}', "k3"),                    # no content
        ('{"op":"c","ts_ms":99999999999999999999,"after":"{}"}', "k4"),       # huge int
        (change_record("no-key", "x"), None),                                  # no record key
    ]
    for value, key in bad:
        produce(n, value, key)
    produce(n, '{"ts_ms":1565787098802}', '{"serverName":"x"}')               # heartbeat
    produce(n, '{"schema":null,"payload":null}', "k5")                         # old tombstone
    produce(n, '{"op":"u","after":null,"updateDescription":{}}', "k6")         # update
    produce(n, '{"op":"d","before":null}', "k7")                               # delete
    wait_until(lambda: metric(n, "chat_persistence_change_consumer_dropped_event_total",
                              dropped_reason="invalid_format") == len(bad), what="drops")
    wait_until(lambda: metric(n, "chat_persistence_change_consumer_ignored_event_total") == 2,
               what="ignored")
    wait_until(lambda: metric(n, "chat_persistence_change_consumer_success_event_total") == 2,
               what="u/d acknowledged")
    assert metric(n, "chat_persistence_change_consumer_ignored_event_total", reason="heartbeat") == 1
    assert metric(n, "chat_persistence_change_consumer_failed_event_total") == 0
    dead = tail(n, TOPIC + ".dlq", count=len(bad) + 1, idle="2s")
    assert len(dead) == len(bad)  # one entry per record: only the handler's group failed
    assert {r.get("key") for r in dead} == {k for _, k in bad}
    for r in dead:
        assert r["headers"]["notifd-group"] == "chat-persistence-change-consumer"
        assert r["headers"]["notifd-error"]  # the parser's reason
        assert r["headers"]["notifd-attempts"] == "1"
        assert r["headers"]["notifd-original-topic"] == TOPIC


def test_exhausted_retries_close_the_stream_and_dead_letter(notifd_factory):
    dead = f"http://127.0.0.1:{free_port()}"
    n = start(notifd_factory, handler={
        "notifications_url": dead,
        "retry": "{max_attempts: 3, initial_interval: 100ms, max_interval: 100ms, jitter: 0}"})

    async def scenario():
        async with chat_ws(n) as ws:
            st, stored, _ = await apost(n.url + "/chat/messages", msg("never notified"))
            assert st == 201
            stored = json.loads(stored)
            # chat_ws succeeded on the first attempt: it is not called again.
            assert same_message(await recv_json(ws), stored)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            assert closed.value.code == 4001  # clients reload the history
            return stored

    stored = run(scenario())
    wait_until(lambda: metric(n, "chat_persistence_change_consumer_exhausted_event_total") == 1,
               what="exhausted")
    assert metric(n, "chat_persistence_change_consumer_failed_event_total", event_type="c") == 3
    assert metric(n, "chat_ws_forwards_total") == 1
    dlq = tail(n, TOPIC + ".dlq")
    assert len(dlq) == 1
    # Debezium's key format: {"id":"<relaxed Extended JSON of _id>"}.
    inner = '{"$oid": "%s"}' % stored["message_id"]
    assert dlq[0]["key"] == json.dumps({"id": inner}, separators=(",", ":"))
    # The history still has it for the clients that reload.
    st, raw, _ = http("GET", f"{n.url}/chat/messages/{stored['message_id']}")
    assert st == 200


# ---- seed compatibility: what Go stores and delivers, byte for byte ------

NUL_CONTENT = "a\x00b\x00\x00 nul \U0001F389\x00"


def test_nul_in_content_is_stored_and_delivered_byte_exact(notifd_factory):
    """Go stores "\\u0000" in a message's content and delivers it; so must
    notifd, through the POST, the store, the change record, the forward
    and the frame (and a record produced by Debezium with it)."""
    n = start(notifd_factory)
    key = json.dumps({"id": json.dumps("nul-1")})

    async def scenario():
        async with chat_ws(n, A, B) as sa, chat_ws(n, B, A) as sb, notif_ws(n, B) as nb:
            st, stored, _ = await apost(n.url + "/chat/messages", msg(NUL_CONTENT))
            assert st == 201, stored
            assert b"\\u0000" in stored
            stored = json.loads(stored)
            assert stored["content"] == NUL_CONTENT
            for ws in (sa, sb):
                assert same_message(await recv_json(ws), stored)
            assert (await recv_json(nb))["payload"]["content"] == NUL_CONTENT
            record = change_record("nul-1", NUL_CONTENT)
            await asyncio.get_running_loop().run_in_executor(None, lambda: produce(n, record, key))
            got = await recv_json(sa)
            assert got["message_id"] == "nul-1" and got["content"] == NUL_CONTENT
            return stored

    stored = run(scenario())
    st, raw, _ = http("GET", f"{n.url}/chat/messages/{stored['message_id']}")
    assert st == 200 and json.loads(raw)["content"] == NUL_CONTENT
    st, raw, _ = http("GET", f"{n.url}/chat/streams/{STREAM_AB}/messages")
    assert st == 200 and json.loads(raw)["messages"][0]["content"] == NUL_CONTENT
    # Idempotency compares the whole content, not up to its first NUL.
    body = msg(NUL_CONTENT, message_id="nul-2")
    assert post(n, body)[0] == 201
    assert post(n, body)[0] == 200
    assert post(n, msg("a", message_id="nul-2"))[0] == 409
    wait_until(lambda: metric(n, "chat_persistence_change_consumer_success_event_total",
                              event_type="c") == 3, what="three records delivered")
    assert metric(n, "chat_persistence_change_consumer_dropped_event_total") == 0
    assert metric(n, "chat_persistence_change_consumer_exhausted_event_total") == 0


def test_a_message_above_the_public_body_limit_is_forwarded(notifd_factory):
    """The in-process forwards are not the public listener: a message whose
    forward body exceeds http.max_body (1 MiB) is delivered, as Go did,
    and no socket of its conversation is closed."""
    n = start(notifd_factory, persist={"max_content_bytes": 3 * 1024 * 1024})
    big = "x" * (1024 * 1024 + 1000)

    async def scenario():
        async with chat_ws(n, A, B) as sa, notif_ws(n, B) as nb:
            st, stored, _ = await apost(n.url + "/chat/messages", msg(big))
            assert st == 201
            stored = json.loads(stored)
            got = json.loads(await asyncio.wait_for(sa.recv(), 30))
            assert same_message(got, stored)
            assert (await recv_json(nb, 30))["payload"]["content"] == big
            st, small, _ = await apost(n.url + "/chat/messages", msg("after the big one"))
            assert st == 201
            assert (await recv_json(sa, 30))["content"] == "after the big one"

    run(scenario())
    wait_until(lambda: metric(n, "chat_persistence_change_consumer_success_event_total",
                              event_type="c") == 2, what="both records delivered")
    assert metric(n, "chat_persistence_change_consumer_failed_event_total") == 0
    assert metric(n, "chat_persistence_change_consumer_exhausted_event_total") == 0


# ---- a build without some backends (meson -Dkafka/-Dredis/-Dmongodb) -----

def test_a_backend_left_out_of_the_build_is_a_config_error_at_its_line(tmp_path):
    missing = sorted({"kafka", "redis", "mongodb"} - built_backends())
    if not missing:
        pytest.skip("this build has every backend (-Dkafka/-Dredis/-Dmongodb)")
    sections = {"kafka": '  kafka: {brokers: "127.0.0.1:9"}\n',
                "redis": '  redis: {address: "127.0.0.1:9"}\n',
                "mongodb": '  mongodb: {uri: "mongodb://127.0.0.1:9"}\n'}
    text = (f"listen: {{address: 127.0.0.1, port: {free_port()}}}\ndata_dir: {tmp_path}\n"
            "backends:\n" + "".join(sections[b] for b in missing))
    if "mongodb" in missing:
        text += "plugins:\n  - name: chat_persistence\n    config: {store: mongodb}\n"
    cfg = tmp_path / "notifd.yaml"
    cfg.write_text(text)
    r = subprocess.run([NOTIFD, "--check", "-c", str(cfg)], capture_output=True, timeout=30)
    out = r.stdout.decode() + r.stderr.decode()
    assert r.returncode != 0, out
    what = {"kafka": "Kafka", "redis": "Redis", "mongodb": "MongoDB"}
    for b in missing:
        assert f"built without {what[b]}" in out, out
    for b in ("kafka", "redis"):
        if b in missing:
            line = 4 + sorted(missing).index(b)
            assert f"notifd.yaml:{line}:" in out and f"backends.{b}:" in out, out
    assert "unknown key" not in out, out
