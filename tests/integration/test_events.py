"""The notification event stream of notifications_ws (docs/events.md) and
the features around it, against running notifd processes on the embedded
bus (read back with `notifd bus tail`):

every source (the four HTTP types, the bus input, a chat notification from
POST /chat/messages through chat_change_handler, a config-declared type
over HTTP and over the bus) produces exactly one event of the documented
shape, in per-user order, with the inbox id and the frame's bytes; the
headers notifd-delivered / notifd-muted / notifd-quiet follow the sockets
and the preferences; unsent outbox rows (event_sent = 0, set with sqlite3
on a stopped daemon's database) are produced again at start, oldest first,
within events_replay_window; a notifications.db from before the outbox is
migrated and replays nothing; events_topic "" and store: none produce
nothing; config-declared types (400s naming the field, the frame's shape,
unknown types still 404 / dead letter, --check naming the key path);
bus_input: forward between two processes sharing an embedded bus file
(stored once by the target and delivered to its socket, a 400 or 404 from
the target dead-lettered, a target that is down retried until it is up).
"""
import asyncio
import datetime
import json
import os
import sqlite3
import subprocess
import time

import pytest
import websockets

from conftest import NOTIFD, checked_exits, http, metric, run, wait_until

TOPIC = "notification-events"
INTERNAL = "events-test-internal-token"
AUTH = f"auth: {{mode: none, internal_token: {INTERNAL}}}\n"
TYPES_YAML = ("\n        - name: order-cancelled\n          required: [order_id, reason]"
              "\n        - name: gift\n          notification_type: gift_sent")
FIELDS = ["id", "user_id", "notification_type", "timestamp", "payload"]


@pytest.fixture
def notifd_factory(notifd_factory):
    yield from checked_exits(notifd_factory)


def nws_yaml(**config):
    text = "  - name: notifications_ws\n    config:\n"
    config.setdefault("types", TYPES_YAML)
    return text + "".join(f"      {k}: {v}\n" for k, v in config.items())


def start(factory, extra_yaml="", roles="", name="notifd", **config):
    return factory(plugins_yaml=roles + nws_yaml(**config), extra_yaml=AUTH + extra_yaml,
                   name=name)


def tail(n, topic=TOPIC, idle="1s"):
    r = subprocess.run([NOTIFD, "bus", "tail", "-c", n.config_path, "-B", "-t", idle, topic],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    return [json.loads(line) for line in r.stdout.decode().splitlines() if line]


def events(n, count, topic=TOPIC):
    """The topic's records once there are at least `count` (all of them)."""
    deadline = time.time() + 20
    while True:
        got = tail(n, topic)
        if len(got) >= count or time.time() > deadline:
            return got
        time.sleep(0.2)


def produce(n, value, key=None, topic="notifications"):
    args = [NOTIFD, "bus", "produce", "-c", n.config_path]
    if key is not None:
        args += ["-k", key]
    r = subprocess.run(args + [topic, json.dumps(value)], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr.decode()


def notify(n, kind, user, payload):
    st, body, _ = http("POST", f"{n.url}/notifications/{kind}?user_id={user}", payload,
                       {"X-Notifd-Internal-Token": INTERNAL})
    return st, json.loads(body) if body else None


def inbox(n, user):
    st, body, _ = http("GET", f"{n.url}/notifications?user_id={user}&limit=200")
    assert st == 200
    return json.loads(body)["notifications"]


def purchase(order):
    return {"order_id": order, "buyer_id": "b", "shop_owner_id": "s", "product_name": "Tea",
            "amount": 2.5, "currency": "USD", "status": "confirmed",
            "purchased_at": "2025-01-02T03:04:05+07:00"}


def reminder(order):
    return {"order_id": order, "user_id": "u", "amount": 9.5, "currency": "USD",
            "due_date": "2025-02-01T00:00:00Z", "days_overdue": 3,
            "payment_link": "https://pay.example/x"}


def shipping(order):
    return {"order_id": order, "tracking_number": "T", "status": "shipped", "location": "L",
            "estimated_delivery": "0001-01-01T00:00:00Z", "updated_at": "0001-01-01T00:00:00Z"}


def chat_msg(content):
    return {"message_id": f"m-{content}", "content": content, "created_at": "0001-01-01T00:00:00Z",
            "stream_id": "6b79c4fda3031c04", "sender_id": "Mr.A", "receiver_id": "Mr.B"}


def subscribe(n, query):
    """A websocket of /notifications/subscribe?user_id=<query>."""
    return websockets.connect(f"{n.ws_url}/notifications/subscribe?user_id={query}",
                              open_timeout=10)


def value(rec):
    v = json.loads(rec["value"])
    assert list(v) == FIELDS
    return v


def quiet_window(inside):
    now = datetime.datetime.now(datetime.timezone.utc)
    if inside:
        a, b = now - datetime.timedelta(hours=1), now + datetime.timedelta(hours=1)
    else:
        a, b = now + datetime.timedelta(hours=1), now + datetime.timedelta(hours=2)
    return {"start": a.strftime("%H:%M"), "end": b.strftime("%H:%M"), "tz": "UTC"}


def db_rows(n, sql, args=()):
    con = sqlite3.connect(os.path.join(n.data_dir, "notifications.db"), timeout=10)
    try:
        rows = con.execute(sql, args).fetchall()
        con.commit()
        return rows
    finally:
        con.close()


# ---- every source, one event each, in per-user order ------------------------------

def test_every_source_produces_one_event_in_user_order(notifd_factory):
    roles = ("  - name: chat_persistence\n  - name: chat_change_handler\n"
             "  - name: chat_ws\n")
    n = start(notifd_factory, roles=roles)
    user = "Mr.B"
    sources = []

    def stored(k):
        wait_until(lambda: len(inbox(n, user)) == k, what=f"{k} stored")

    for kind, payload in [("purchase", purchase("p1")), ("payment-reminder", reminder("r1")),
                          ("shipping-update", shipping("s1")), ("chat", chat_msg("direct"))]:
        assert notify(n, kind, user, payload)[0] == 200
        sources.append(f"{kind}_notification".replace("-", "_"))
    produce(n, {"type": "purchase", "user_id": user, "payload": purchase("bus1")}, key=user)
    stored(5)
    sources.append("purchase_notification")
    st, body, _ = http("POST", f"{n.url}/chat/messages",
                       {"content": "via chat", "stream_id": "6b79c4fda3031c04",
                        "sender_id": "Mr.A", "receiver_id": user})
    assert st == 201, body
    stored(6)
    sources.append("chat_notification")
    assert notify(n, "order-cancelled", user, {"order_id": "c1", "reason": "r"})[0] == 200
    sources.append("order_cancelled_notification")
    produce(n, {"type": "gift", "user_id": user, "payload": {"to": "x", "n": [1, 2]}}, key=user)
    stored(8)
    sources.append("gift_sent")
    notify(n, "purchase", "someone-else", purchase("other"))

    recs = events(n, 9)
    assert len(recs) == 9, recs
    mine = [r for r in recs if r["key"] == user]
    assert len(mine) == 8
    stored_recs = {x["id"]: x for x in inbox(n, user)}
    vals = [value(r) for r in mine]
    assert [v["id"] for v in vals] == sorted(stored_recs)  # each once, in order
    assert [v["notification_type"] for v in vals] == sources
    raw = http("GET", f"{n.url}/notifications?user_id={user}&limit=200")[1].decode()
    for r, v in zip(mine, vals):
        s = stored_recs[v["id"]]
        assert v["user_id"] == user and v["timestamp"] == s["timestamp"]
        assert v["payload"] == s["payload"]
        # the payload's bytes are the frame's (as stored and listed)
        body = r["value"]
        assert body.startswith('{"id":%d,"user_id":"Mr.B","notification_type":' % v["id"])
        payload_text = body[body.index(',"payload":') + 11:-1]
        assert payload_text in raw
        assert r["headers"] == {"notifd-delivered": "0"}
    assert vals[-1]["payload"] == {"to": "x", "n": [1, 2]}
    assert metric(n, "notifications_ws_events_total", result="produced") == 9
    # confirmed events are marked sent by a later batch or the timer
    wait_until(lambda: db_rows(n, "SELECT count(*) FROM notifications WHERE event_sent=0")
               == [(0,)], what="outbox marked")


def test_headers_follow_sockets_and_preferences(notifd_factory):
    n = start(notifd_factory)

    def put(user, doc):
        st, body, _ = http("PUT", f"{n.url}/users/{user}/preferences", doc)
        assert st == 200, body

    put("muted", {"channels": {"purchase": {"push": False, "webhook": False},
                               "default": {"email": False, "push": True}}})
    put("quiet", {"quiet_hours": quiet_window(True)})
    put("awake", {"quiet_hours": quiet_window(False)})
    put("nows", {"channels": {"shipping_update_notification": {"websocket": False}}})

    async def online():
        async with subscribe(n, "online") as ws, subscribe(n, "online&v=2") as ws2, \
                subscribe(n, "nows") as ws3:
            loop = asyncio.get_running_loop()
            assert (await loop.run_in_executor(
                None, lambda: notify(n, "purchase", "online", purchase("o"))))[1][
                    "delivered"] == 2
            await ws.recv()
            await ws2.recv()
            await loop.run_in_executor(None, lambda: notify(n, "shipping-update", "nows",
                                                            shipping("n")))
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(ws3.recv(), 0.3)

    run(online())
    for user, kind, p in [("muted", "purchase", purchase("m1")),
                          ("muted", "shipping-update", shipping("m2")),
                          ("quiet", "purchase", purchase("q")),
                          ("awake", "purchase", purchase("a"))]:
        assert notify(n, kind, user, p)[0] == 200
    recs = events(n, 6)
    # one user's events are in order; users are on different partitions
    got = sorted(((r["key"], value(r)["id"]), value(r)["notification_type"], r["headers"])
                 for r in recs)
    assert [(k[0], t, h) for k, t, h in got] == sorted([
        ("online", "purchase_notification", {"notifd-delivered": "2"}),
        ("nows", "shipping_update_notification",
         {"notifd-delivered": "0", "notifd-muted": "websocket"}),
        ("muted", "purchase_notification",
         {"notifd-delivered": "0", "notifd-muted": "push,webhook,email"}),
        ("muted", "shipping_update_notification",
         {"notifd-delivered": "0", "notifd-muted": "email"}),
        ("quiet", "purchase_notification", {"notifd-delivered": "0", "notifd-quiet": "1"}),
        ("awake", "purchase_notification", {"notifd-delivered": "0"}),
    ], key=lambda x: x[0])


# ---- the outbox ----------------------------------------------------------------------

def test_unsent_rows_are_produced_again_at_start(notifd_factory):
    n = start(notifd_factory, events_replay_window="10m")
    for i in range(4):
        assert notify(n, "purchase", "rita", purchase(f"o{i}"))[0] == 200
    assert len(events(n, 4)) == 4
    wait_until(lambda: db_rows(n, "SELECT count(*) FROM notifications WHERE event_sent=0")
               == [(0,)], what="outbox marked")
    assert n.stop() == 0
    ids = [r[0] for r in db_rows(n, "SELECT id FROM notifications ORDER BY id")]
    # ids[0]: unsent but older than the window; ids[2], ids[3]: unsent
    db_rows(n, "UPDATE notifications SET event_sent=0, created_at=created_at-3600000"
               " WHERE id=?", (ids[0],))
    db_rows(n, "UPDATE notifications SET event_sent=0 WHERE id IN (?, ?)", (ids[2], ids[3]))
    n.start()
    recs = events(n, 6)
    assert len(recs) == 6, recs
    again = recs[4:]
    assert [value(r)["id"] for r in again] == [ids[2], ids[3]]  # oldest first
    assert all(r["headers"] == {} for r in again)  # delivered unknown after a restart
    assert [value(r)["payload"]["order_id"] for r in again] == ["o2", "o3"]
    wait_until(lambda: metric(n, "notifications_ws_events_total", result="replayed") == 2,
               what="replayed metric")
    wait_until(lambda: db_rows(n, "SELECT id FROM notifications WHERE event_sent=0")
               == [(ids[0],)], what="replayed rows marked")
    assert n.stop() == 0
    n.start()  # nothing left to replay inside the window
    time.sleep(0.5)
    assert len(tail(n)) == 6


def test_replay_runs_in_rounds_until_the_outbox_is_empty(notifd_factory):
    """More unsent rows than one round reads (500): every one is produced
    again, in id order, and marked."""
    n = start(notifd_factory)
    for i in range(620):
        produce_value = {"type": "shipping-update", "user_id": f"u{i % 7}",
                         "payload": shipping(f"o{i}")}
        if i % 62 == 0:  # a few over the bus, the rest over HTTP
            produce(n, produce_value, key=produce_value["user_id"])
        else:
            assert notify(n, "shipping-update", f"u{i % 7}", shipping(f"o{i}"))[0] == 200
    wait_until(lambda: db_rows(n, "SELECT count(*), sum(event_sent) FROM notifications")
               == [(620, 620)], what="all stored and marked")
    assert n.stop() == 0
    db_rows(n, "UPDATE notifications SET event_sent=0")
    n.start()
    wait_until(lambda: db_rows(n, "SELECT count(*) FROM notifications WHERE event_sent=0")
               == [(0,)], timeout=30, what="outbox emptied")
    recs = events(n, 1240)
    assert len(recs) == 1240
    for u in range(7):  # per user: the first run, then the replay, each in id order
        ids = [value(r)["id"] for r in recs if r["key"] == f"u{u}"]
        first = sorted(set(ids))
        assert ids == first + first
    assert metric(n, "notifications_ws_events_total", result="replayed") == 620


def test_database_from_before_the_outbox_is_migrated(notifd_factory, tmp_path):
    data = os.path.join(str(tmp_path), "notifd-data")
    os.makedirs(data)
    con = sqlite3.connect(os.path.join(data, "notifications.db"))
    con.executescript(
        "CREATE TABLE notifications(id INTEGER PRIMARY KEY, user_id TEXT NOT NULL,"
        " type TEXT NOT NULL, ts TEXT NOT NULL, payload TEXT NOT NULL,"
        " created_at INTEGER NOT NULL, read INTEGER NOT NULL DEFAULT 0);"
        "INSERT INTO notifications VALUES(7, 'old', 'purchase_notification',"
        " '\"2026-01-01T00:00:00Z\"', '{}', %d, 0);" % int(time.time() * 1000))
    con.close()
    n = start(notifd_factory)
    assert notify(n, "purchase", "old", purchase("new"))[0] == 200
    recs = events(n, 1)
    assert [value(r)["id"] for r in recs] == [8]  # the old row is not an event
    assert [x["id"] for x in inbox(n, "old")] == [8, 7]
    wait_until(lambda: db_rows(n, "SELECT id, event_sent FROM notifications ORDER BY id")
               == [(7, 1), (8, 1)], what="migrated and marked")


def test_no_events_when_off_or_without_a_store(notifd_factory):
    off = start(notifd_factory, name="off", events_topic='""')
    none = start(notifd_factory, name="none", store="none")
    for n in (off, none):
        assert notify(n, "purchase", "u", purchase("x"))[0] == 200
        assert notify(n, "order-cancelled", "u", {"order_id": 1, "reason": "r"})[0] == 200
    time.sleep(0.3)
    assert tail(off) == [] and tail(none) == []
    assert db_rows(off, "SELECT count(*) FROM notifications WHERE event_sent=0") == [(0,)]


# ---- config-declared types -------------------------------------------------------------

def test_declared_type_over_http_and_bus(notifd_factory):
    n = start(notifd_factory)

    async def scenario():
        async with subscribe(n, "t") as ws:
            loop = asyncio.get_running_loop()
            body = b'{ "order_id" : "O-1",\n "reason": "a b\\" c", "extra": {"k": [1, 2.50]} }'
            st, raw, _ = await loop.run_in_executor(None, lambda: http(
                "POST", f"{n.url}/notifications/order-cancelled?user_id=t", body))
            assert st == 200 and json.loads(raw) == {
                "delivered": 1, "notification_type": "order_cancelled_notification",
                "user_id": "t"}
            frame = await asyncio.wait_for(ws.recv(), 5)
            assert frame.startswith('{"notification_type":"order_cancelled_notification",'
                                    '"timestamp":"')
            assert frame.endswith('"payload":{"order_id":"O-1","reason":"a b\\" c",'
                                  '"extra":{"k":[1,2.50]}}}')
            assert list(json.loads(frame)) == ["notification_type", "timestamp", "payload"]

    run(scenario())
    for body, why in [({"order_id": "x"}, "missing required field 'reason'"),
                      ({"order_id": "x", "reason": None}, "missing required field 'reason'"),
                      ([1], "the payload must be a JSON object"),
                      (b"{nope", "invalid character")]:
        st, raw, _ = http("POST", f"{n.url}/notifications/order-cancelled?user_id=t", body)
        assert st == 400 and why in json.loads(raw)["error"], (body, raw)
    st, raw, _ = http("POST", f"{n.url}/notifications/order-cancelled", {"order_id": "x",
                                                                         "reason": "r"})
    assert st == 400 and b"user_id" in raw
    assert http("POST", f"{n.url}/notifications/no-such-type?user_id=t", {})[0] == 404
    produce(n, {"type": "order-cancelled", "user_id": "t", "payload": {"order_id": "b"}})
    produce(n, {"type": "no-such-type", "user_id": "t", "payload": {}})
    produce(n, {"type": "order_cancelled_notification", "user_id": "t",
                "payload": {"order_id": "bus", "reason": "r"}})
    wait_until(lambda: len(inbox(n, "t")) == 2, what="bus record stored")
    dlq = events(n, 2, topic="notifications.dlq")
    assert len(dlq) == 2 and sorted(r["headers"]["notifd-error"] for r in dlq) == [
        "invalid_payload", "unknown_type"], dlq
    assert inbox(n, "t")[0]["payload"] == {"order_id": "bus", "reason": "r"}
    assert [value(r)["notification_type"] for r in events(n, 2)] == [
        "order_cancelled_notification"] * 2


@pytest.mark.parametrize("types, expect", [
    ("\n        - name: Bad_Name", "types[0].name"),
    ("\n        - name: ok\n        - name: purchase", "types[1].name"),
    ("\n        - name: read", "types[0].name"),
    ("\n        - name: a\n          notification_type: Not-Valid", "types[0].notification_type"),
    ("\n        - name: a\n        - name: a", "types[1]"),
    ("\n        - name: a\n          required: [x, '']", "types[0].required[1]"),
    ("\n        - name: a\n          requird: [x]", "types[0].requird"),
    ("\n        - notification_type: a_b", "types[0].name"),
])
def test_check_names_the_bad_types_entry(notifd_factory, types, expect):
    n = notifd_factory(plugins_yaml=nws_yaml(types=types), extra_yaml=AUTH, start=False)
    r = subprocess.run([NOTIFD, "--check", "-c", n.config_path], capture_output=True, timeout=30)
    out = (r.stdout + r.stderr).decode()
    assert r.returncode != 0 and expect in out, out


# ---- bus_input: forward ------------------------------------------------------------------

def test_bus_input_forward_to_the_owning_process(notifd_factory, tmp_path):
    bus = os.path.join(str(tmp_path), "shared-bus.db")
    shared = f"bus: {{embedded: {{path: {bus}, poll_interval: 20ms}}}}\n"
    # B: stores and delivers (no bus input); its order-cancelled needs a reason.
    b = start(notifd_factory, extra_yaml=shared, name="b", topic='""')
    # A: consumes the topic and forwards every record to B; it declares a
    # type B does not know, and a laxer order-cancelled.
    a_types = ("\n        - name: order-cancelled\n          required: [order_id]"
               "\n        - name: only-a")
    a = start(notifd_factory, extra_yaml=shared, name="a", types=a_types, bus_input="forward",
              forward_url=f"http://127.0.0.1:{b.port}/")

    async def scenario():
        async with subscribe(b, "fw") as ws:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, lambda: produce(
                a, {"type": "purchase", "user_id": "fw", "payload": purchase("f1")}, key="fw"))
            got = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert got["payload"]["order_id"] == "f1"
            await loop.run_in_executor(None, lambda: produce(
                a, {"type": "order-cancelled", "payload": {"order_id": "f2", "reason": "r"}},
                key="fw"))
            got = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert got["notification_type"] == "order_cancelled_notification"

    run(scenario())
    produce(a, {"type": "order-cancelled", "user_id": "fw", "payload": {"order_id": "f3"}})
    produce(a, {"type": "only-a", "user_id": "fw", "payload": {}})
    produce(a, {"type": "purchase", "user_id": "fw", "payload": {"order_id": "bad"}})
    wait_until(lambda: metric(a, "notifd_bus_dropped_total") >= 3, what="three dropped")
    assert metric(a, "notifd_bus_dropped_total", reason="invalid_payload") == 2  # B's 400, A's
    assert metric(a, "notifd_bus_dropped_total", reason="unknown_type") == 1  # B's 404
    assert metric(a, "notifications_ws_forwards_total", result="forwarded") == 2
    assert [x["payload"]["order_id"] for x in inbox(b, "fw")] == ["f2", "f1"]  # stored once
    assert http("GET", f"{a.url}/notifications?user_id=fw")[1].count(b'"id"') == 0

    # B down: the record is retried until B answers, then stored once.
    assert b.stop() == 0
    produce(a, {"type": "purchase", "user_id": "fw", "payload": purchase("f4")}, key="fw")
    wait_until(lambda: metric(a, "notifications_ws_forwards_total", result="failed") >= 1,
               what="a failed forward")
    b.start()
    wait_until(lambda: len(inbox(b, "fw")) == 3, what="stored after B came back")
    time.sleep(0.5)
    assert [x["payload"]["order_id"] for x in inbox(b, "fw")] == ["f4", "f2", "f1"]
    # events come from B, the process that stored them
    assert [value(r)["payload"]["order_id"] for r in events(b, 3)] == ["f1", "f2", "f4"]


# ---- MongoDB (FerretDB) ------------------------------------------------------------------

from test_inbox import ferretdb  # noqa: E402,F401  (the fixture; SKIPPED when it cannot run)


def test_outbox_on_mongodb(notifd_factory, ferretdb):  # noqa: F811
    db = f"events{os.getpid()}{int(time.time())}"
    n = start(notifd_factory, extra_yaml=f"backends:\n  mongodb: {{uri: \"{ferretdb}\", "
              f"database: {db}}}\n")
    wait_until(lambda: "inbox: MongoDB reachable" in n.read_log(), timeout=30,
               what="MongoDB setup")
    for i in range(3):
        assert notify(n, "purchase", "mona", purchase(f"a{i}"))[0] == 200
    assert [value(r)["id"] for r in events(n, 3)] == [1, 2, 3]
    time.sleep(1.5)  # the marks: next batch or the 0.5 s timer
    assert n.stop() == 0
    n.start()
    wait_until(lambda: n.read_log().count("inbox: MongoDB reachable") == 2,
               timeout=30, what="MongoDB setup after restart")
    time.sleep(1)
    assert len(tail(n)) == 3  # every event was marked sent: nothing replayed
    # kill -9 right after the answers: the last marks cannot have committed
    for i in range(3, 6):
        assert notify(n, "purchase", "mona", purchase(f"a{i}"))[0] == 200
    n.kill9()
    n.start()
    wait_until(lambda: metric(n, "notifications_ws_events_total", result="replayed") >= 1,
               timeout=30, what="unsent events replayed")
    ids = [value(r)["id"] for r in events(n, 6)]
    assert sorted(set(ids)) == [1, 2, 3, 4, 5, 6] and ids[:3] == [1, 2, 3]  # none lost
    time.sleep(1.5)
    assert n.stop() == 0
    n.start()
    time.sleep(2)
    assert len(tail(n)) == len(ids)  # marked: nothing replayed a second time
