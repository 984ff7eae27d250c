"""The chat path across processes with real servers started here on
loopback: FerretDB v1 (MongoDB wire protocol, SQLite handler; built by
tests/services/ferretdb.sh from the Go module) as the chat store with
chat_persistence's polling relay, a real Apache Kafka broker
(tests/services/kafka.sh) as the bus, a real redis-server
(tests/services/redis.sh) for dedupe, and four notifd processes:

  P  chat_persistence      store mongodb, relay poll, bus kafka
  H  chat_change_handler   bus kafka, kv redis, targets W1 and W2 over HTTP
  W1 chat_ws               sockets
  W2 notifications_ws      sockets

Covers: POST -> both chat sockets and the receiver's notifications, history
from MongoDB, the published mark (no republish); a duplicate Kafka record
delivered once (Redis dedupe); kill -9 of P before its relay published, then
restart -> delivered; a forward target down for a while -> retried, then
delivered, the healthy target called once; down for good -> the stream's
sockets closed and the record dead-lettered on Kafka.

A service that cannot run here makes the tests SKIPPED with the reason.
"""
import asyncio
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from datetime import datetime

import pytest
import websockets

from conftest import NOTIFD, SOURCE, free_port, http, metric, stream_id, wait_until

TOKEN = "chat-distributed-internal-token"
A, B = "sender-a", "receiver-b"
STREAM_AB = "3216fea9031bf845"
SERVICES = os.path.join(SOURCE, "tests", "services")


# ---- services ---------------------------------------------------------------

def _port_open(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _service(script, name, env=None):
    d = tempfile.mkdtemp(prefix=f"notifd-{name}-")
    r = subprocess.run([os.path.join(SERVICES, script), "start", d], capture_output=True,
                       timeout=900, env=dict(os.environ, **(env or {})))
    if r.returncode != 0:
        subprocess.run([os.path.join(SERVICES, script), "stop", d], capture_output=True)
        reason = r.stderr.decode().strip() or f"{script} exited {r.returncode}"
        return d, None, reason
    return d, r.stdout.decode().strip().splitlines()[-1], None


def _running(script, name, env=None):
    """A module fixture's body: the service's address, stopped by pid after
    the module; SKIPPED with the reason when it cannot start."""
    d, addr, why = _service(script, name, env)
    try:
        if not addr:
            pytest.skip(f"SKIPPED: {name}: {why}")
        yield addr
    finally:
        subprocess.run([os.path.join(SERVICES, script), "stop", d], capture_output=True,
                       timeout=60)
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def ferretdb():
    # tests/services/ferretdb.sh builds the binary on first use (Go module
    # download + go build, a minute or two), then caches it.
    yield from _running("ferretdb.sh", "ferretdb")


@pytest.fixture(scope="module")
def ferretdb_sqlite():
    """FerretDB on its SQLite handler: PostgreSQL's jsonb (the default
    handler's storage) cannot hold a NUL in a string (SQLSTATE 22P05),
    which MongoDB and the Go service store."""
    yield from _running("ferretdb.sh", "ferretdb-sqlite", {"NOTIFD_FERRETDB_BACKEND": "sqlite"})


@pytest.fixture(scope="module")
def kafka():
    yield from _running("kafka.sh", "kafka")


@pytest.fixture(scope="module")
def redis():
    yield from _running("redis.sh", "redis")


# ---- notifd processes -------------------------------------------------------

class Cluster:
    """Names, topic, database and dedupe prefix private to one test."""

    def __init__(self, factory, kafka, redis, mongo):
        self.factory, self.kafka, self.redis, self.mongo = factory, kafka, redis, mongo
        tag = uuid.uuid4().hex[:10]
        self.topic = f"chat-change-{tag}"
        self.group = f"chat-handler-{tag}"
        self.db = f"chat_{tag}"
        self.prefix = f"t{tag}"
        # The topic exists (with a heartbeat the handler ignores) before any
        # consumer subscribes, so nobody waits for a metadata refresh.
        produce(self.kafka, self.topic, '{"ts_ms":1}', key='{"serverName":"test"}')

    def host_yaml(self, kafka=False, redis=False, mongo=False):
        y = f"auth: {{internal_token: {TOKEN}}}\nbackends:\n"
        if kafka:
            y += f"  kafka: {{brokers: \"{self.kafka}\"}}\n"
        if redis:
            y += f"  redis: {{address: \"{self.redis}\", key_prefix: {self.prefix}}}\n"
        if mongo:
            y += f"  mongodb: {{uri: \"{self.mongo}\", database: {self.db}}}\n"
        if not (kafka or redis or mongo):
            y = f"auth: {{internal_token: {TOKEN}}}\n"
        return y

    def ws_roles(self, start=True):
        w1 = self.factory(plugins_yaml="  - name: chat_ws\n", extra_yaml=self.host_yaml(),
                          name="w1", start=start)
        w2 = self.factory(plugins_yaml="  - name: notifications_ws\n    config: {topic: \"\"}\n",
                          extra_yaml=self.host_yaml(), name="w2", start=start)
        return w1, w2

    def persistence(self, name="p", **cfg):
        conf = {"change_topic": self.topic, "relay": "poll", "relay_poll_interval": "200ms"}
        conf.update(cfg)
        y = "  - name: chat_persistence\n    config:\n" + "".join(
            f"      {k}: {v}\n" for k, v in conf.items())
        return self.factory(plugins_yaml=y, extra_yaml=self.host_yaml(kafka=True, mongo=True),
                            name=name)

    def handler(self, chat_ws_url, notifications_url, name="h", **cfg):
        conf = {"change_topic": self.topic, "group": self.group, "chat_ws_url": chat_ws_url,
                "notifications_url": notifications_url,
                "retry": "{max_attempts: 1000, initial_interval: 300ms, max_interval: 300ms, "
                         "jitter: 0}"}
        conf.update(cfg)
        y = "  - name: chat_change_handler\n    config:\n" + "".join(
            f"      {k}: {v}\n" for k, v in conf.items())
        h = self.factory(plugins_yaml=y, extra_yaml=self.host_yaml(kafka=True, redis=True),
                         name=name)
        # Joined the group and read the heartbeat: ready for real records.
        wait_until(lambda: metric(h, "chat_persistence_change_consumer_ignored_event_total",
                                  reason="heartbeat") >= 1, timeout=60, what="consumer ready")
        return h


@pytest.fixture
def cluster(notifd_factory, kafka, redis, ferretdb):
    return Cluster(notifd_factory, kafka, redis, ferretdb)


def produce(brokers, topic, value, key=None):
    args = [NOTIFD, "bus", "produce", "-b", brokers]
    if key is not None:
        args += ["-k", key]
    r = subprocess.run(args + [topic, value], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()


def tail(brokers, topic, count=1, idle="15s"):
    r = subprocess.run([NOTIFD, "bus", "tail", "-b", brokers, "-B", "-f", "-n", str(count), "-t", idle,
                        topic], capture_output=True, timeout=120)
    return [json.loads(line) for line in r.stdout.decode().splitlines() if line.strip()]


def run(coro, timeout=120):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def in_thread(fn):
    return await asyncio.get_running_loop().run_in_executor(None, fn)


def chat_ws(w, sender=A, receiver=B, stream=STREAM_AB):
    q = f"stream_id={stream}&sender_id={sender}&receiver_id={receiver}"
    return websockets.connect(f"{w.ws_url}/chat/subscribe-websocket?{q}", open_timeout=10)


def notif_ws(w, user):
    return websockets.connect(f"{w.ws_url}/notifications/subscribe?user_id={user}",
                              open_timeout=10)


async def recv_json(ws, timeout=20):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def assert_silent(ws, wait=1.0):
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(ws.recv(), wait)


def msg(content, **extra):
    return dict({"content": content, "stream_id": STREAM_AB, "sender_id": A,
                 "receiver_id": B}, **extra)


def same_message(got, want):
    keys = ("message_id", "content", "created_at", "stream_id", "sender_id", "receiver_id")
    return all(got[k] == want[k] for k in keys)


# ---- tests ------------------------------------------------------------------

def test_end_to_end_and_duplicate_delivered_once(cluster):
    w1, w2 = cluster.ws_roles()
    p = cluster.persistence()
    h = cluster.handler(w1.url, w2.url)

    async def scenario():
        async with chat_ws(w1, A, B) as sa, chat_ws(w1, B, A) as sb, notif_ws(w2, B) as nb:
            st, raw, _ = await in_thread(lambda: http("POST", p.url + "/chat/messages",
                                                      msg("over FerretDB, Kafka and Redis")))
            assert st == 201, raw
            stored = json.loads(raw)
            for ws in (sa, sb):
                assert same_message(await recv_json(ws), stored)
            assert same_message((await recv_json(nb))["payload"], stored)
            # The same record again on Kafka: Redis says it was delivered.
            record = json.dumps({"before": None, "op": "c", "ts_ms": 1, "after": json.dumps({
                "_id": {"$oid": stored["message_id"]}, "content": stored["content"],
                "created_at": {"$date": stored["created_at"]}, "stream_id": STREAM_AB,
                "sender_id": A, "receiver_id": B})})
            key = json.dumps({"id": '{"$oid": "%s"}' % stored["message_id"]},
                             separators=(",", ":"))
            await in_thread(lambda: produce(cluster.kafka, cluster.topic, record, key))
            await in_thread(lambda: wait_until(lambda: metric(
                h, "chat_persistence_change_consumer_dropped_event_total",
                dropped_reason="dropped_from_event_store_validation") == 1,
                what="dedupe", timeout=20))
            await assert_silent(sa)
            await assert_silent(nb)
            return stored

    stored = run(scenario())
    st, raw, _ = http("GET", f"{p.url}/chat/streams/{STREAM_AB}/messages")
    assert st == 200
    assert [m for m in json.loads(raw)["messages"]] == [stored]
    st, raw, _ = http("GET", f"{p.url}/chat/messages/{stored['message_id']}")
    assert st == 200 and json.loads(raw) == stored
    # Marked published: later polls do not publish it again.
    time.sleep(1.0)
    assert metric(p, "chat_persistence_relay_published_total") == 1
    assert metric(h, "chat_persistence_change_consumer_success_event_total", event_type="c") == 1


def test_nul_in_content_is_stored_and_delivered_byte_exact_on_mongodb(
        notifd_factory, kafka, redis, ferretdb_sqlite):
    """The MongoDB path of "\\u0000" in content: BSON string with its length,
    the poll relay's change record, the forwards over HTTP, the frames."""
    cluster = Cluster(notifd_factory, kafka, redis, ferretdb_sqlite)
    w1, w2 = cluster.ws_roles()
    p = cluster.persistence()
    cluster.handler(w1.url, w2.url)
    a, b = "nul-sender", "nul-receiver"
    stream = stream_id(a, b)
    content = "a\x00b\x00 nul\x00"
    body = {"content": content, "stream_id": stream, "sender_id": a, "receiver_id": b}

    async def scenario():
        async with chat_ws(w1, a, b, stream) as sa, notif_ws(w2, b) as nb:
            st, raw, _ = await in_thread(lambda: http("POST", p.url + "/chat/messages", body))
            assert st == 201, raw
            stored = json.loads(raw)
            assert stored["content"] == content
            assert same_message(await recv_json(sa), stored)
            assert (await recv_json(nb))["payload"]["content"] == content
            return stored

    stored = run(scenario())
    st, raw, _ = http("GET", f"{p.url}/chat/messages/{stored['message_id']}")
    assert st == 200 and json.loads(raw)["content"] == content


def test_history_pages_on_mongodb(cluster):
    p = cluster.persistence(relay="none")
    for i in range(5):
        st, _, _ = http("POST", p.url + "/chat/messages", msg(f"m{i}"))
        assert st == 201
    # A client id (string _id) next to server ObjectIds.
    assert http("POST", p.url + "/chat/messages", msg("m5", message_id="client-5"))[0] == 201
    got, cursor = [], None
    while True:
        st, raw, _ = http("GET", f"{p.url}/chat/streams/{STREAM_AB}/messages?limit=2"
                          + (f"&before={cursor}" if cursor else ""))
        assert st == 200, raw
        page = json.loads(raw)
        got += page["messages"]
        cursor = page["next_before"]
        if not cursor:
            break
    assert sorted(m["content"] for m in got) == [f"m{i}" for i in range(6)]
    assert len({m["message_id"] for m in got}) == 6
    times = [datetime.fromisoformat(m["created_at"]) for m in got]
    assert times == sorted(times, reverse=True)  # newest first
    st, raw, _ = http("POST", p.url + "/chat/messages", msg("m5", message_id="client-5"))
    assert st == 200 and json.loads(raw)["message_id"] == "client-5"
    assert http("POST", p.url + "/chat/messages", msg("other", message_id="client-5"))[0] == 409


def test_kill9_before_the_poll_relay_published(cluster):
    w1, w2 = cluster.ws_roles()
    h = cluster.handler(w1.url, w2.url)

    async def scenario():
        async with chat_ws(w1) as sa, notif_ws(w2, B) as nb:
            p1 = await in_thread(lambda: cluster.persistence(relay_delay="1h",
                                                             relay_poll_interval="1h"))
            st, raw, _ = await in_thread(lambda: http("POST", p1.url + "/chat/messages",
                                                      msg("stored, then kill -9")))
            assert st == 201
            stored = json.loads(raw)
            await assert_silent(sa, 0.5)
            p1.kill9()
            await in_thread(lambda: cluster.persistence())  # same name: same data dir
            assert same_message(await recv_json(sa), stored)
            assert same_message((await recv_json(nb))["payload"], stored)
            await assert_silent(sa)

    run(scenario())
    assert metric(h, "chat_persistence_change_consumer_success_event_total", event_type="c") == 1


def test_target_down_for_a_while_is_retried_then_delivered(cluster):
    w1, w2 = cluster.ws_roles(start=False)
    w1.start()
    p = cluster.persistence()
    h = cluster.handler(w1.url, w2.url)  # w2 not listening yet

    async def scenario():
        async with chat_ws(w1) as sa:
            st, raw, _ = await in_thread(lambda: http("POST", p.url + "/chat/messages",
                                                      msg("notifications were down")))
            assert st == 201
            stored = json.loads(raw)
            assert same_message(await recv_json(sa), stored)
            await in_thread(lambda: wait_until(lambda: metric(
                h, "chat_persistence_change_consumer_failed_event_total") >= 2,
                what="failed attempts", timeout=20))
            await in_thread(w2.start)
            await in_thread(lambda: wait_until(lambda: metric(
                h, "chat_persistence_change_consumer_success_event_total", event_type="c") == 1,
                what="delivered after the target came back", timeout=20))
            await assert_silent(sa)  # the chat side was not called again

    run(scenario())
    assert metric(w1, "chat_ws_forwards_total") == 1
    assert metric(w2, "notifications_ws_forwards_total") == 1
    assert metric(h, "chat_persistence_change_consumer_exhausted_event_total") == 0


def test_target_down_for_good_closes_the_stream_and_dead_letters(cluster):
    w1, _ = cluster.ws_roles(start=False)
    w1.start()
    dead = f"http://127.0.0.1:{free_port()}"
    p = cluster.persistence()
    h = cluster.handler(w1.url, dead, retry="{max_attempts: 3, initial_interval: 200ms, "
                                             "max_interval: 200ms, jitter: 0}")

    async def scenario():
        async with chat_ws(w1) as sa:
            st, raw, _ = await in_thread(lambda: http("POST", p.url + "/chat/messages",
                                                      msg("nobody to notify")))
            assert st == 201
            stored = json.loads(raw)
            assert same_message(await recv_json(sa), stored)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(sa.recv(), 30)
            assert closed.value.code == 4001
            return stored

    stored = run(scenario())
    wait_until(lambda: metric(h, "chat_persistence_change_consumer_exhausted_event_total") == 1,
               what="exhausted", timeout=20)
    assert metric(h, "chat_persistence_change_consumer_failed_event_total", event_type="c") == 3
    dlq = tail(cluster.kafka, cluster.topic + ".dlq")
    assert len(dlq) == 1
    assert dlq[0]["key"] == json.dumps({"id": '{"$oid": "%s"}' % stored["message_id"]},
                                       separators=(",", ":"))
    # Who gave up, on what, after how many attempts.
    hd = dlq[0]["headers"]
    assert hd["notifd-group"] == cluster.group
    assert hd["notifd-attempts"] == "3"
    assert hd["notifd-original-topic"] == cluster.topic
    assert int(hd["notifd-original-partition"]) >= 0 and int(hd["notifd-original-offset"]) >= 0
    assert hd["notifd-error"]
