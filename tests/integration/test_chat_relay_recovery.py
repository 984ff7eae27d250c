"""chat_persistence's outbox relay when the bus refuses records: a real Kafka
broker (tests/services/kafka.sh) is frozen with SIGSTOP so produces time
out, then thawed.

  P  chat_persistence   SQLite store, outbox relay -> Kafka
                        (message.timeout.ms 3000, relay_retry_interval 300ms)
  H  chat_change_handler + chat_ws + notifications_ws, Kafka consumer,
     embedded dedupe

Live publishing (committed batches produced at once) -> produce errors ->
catch-up from the outbox with backoff -> every stored message delivered
once to the sockets -> live again.  A service that cannot run here makes
the test SKIPPED with the reason.
"""
import asyncio
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

import pytest
import websockets

from conftest import SOURCE, http, metric, stream_id, wait_until

SERVICES = os.path.join(SOURCE, "tests", "services")
A, B = "relay-a", "relay-b"


@pytest.fixture(scope="module")
def kafka():
    d = tempfile.mkdtemp(prefix="notifd-kafka-relay-")
    script = os.path.join(SERVICES, "kafka.sh")
    try:
        r = subprocess.run([script, "start", d], capture_output=True, timeout=900)
        if r.returncode != 0:
            pytest.skip("SKIPPED: kafka: " + (r.stderr.decode().strip() or f"exit {r.returncode}"))
        with open(os.path.join(d, "kafka.pid")) as f:
            pid = int(f.read().strip())
        yield r.stdout.decode().strip().splitlines()[-1], pid
    finally:
        try:
            os.kill(int(open(os.path.join(d, "kafka.pid")).read().strip()), signal.SIGCONT)
        except (OSError, ValueError):
            pass
        subprocess.run([script, "stop", d], capture_output=True, timeout=60)
        shutil.rmtree(d, ignore_errors=True)


def test_produce_errors_fall_back_to_the_outbox_then_live_again(notifd_factory, kafka):
    brokers, kafka_pid = kafka
    topic = f"chat-relay-{uuid.uuid4().hex[:10]}"
    kafka_yaml = (f"backends:\n  kafka:\n    brokers: \"{brokers}\"\n"
                  f"    producer_properties: {{message.timeout.ms: 3000, linger.ms: 1}}\n")
    h = notifd_factory(
        plugins_yaml=("  - name: chat_ws\n"
                      "  - name: notifications_ws\n    config: {topic: \"\"}\n"
                      "  - name: chat_change_handler\n"
                      f"    config: {{change_topic: {topic}, group: g-{topic}}}\n"),
        extra_yaml=kafka_yaml, name="h")
    p = notifd_factory(
        plugins_yaml=("  - name: chat_persistence\n"
                      f"    config: {{store: sqlite, change_topic: {topic},"
                      f" relay_retry_interval: 300ms}}\n"),
        extra_yaml=kafka_yaml, name="p")
    sid = stream_id(A, B)

    def post(content):
        st, raw, _ = http("POST", p.url + "/chat/persist",
                          {"content": content, "stream_id": sid, "sender_id": A, "receiver_id": B})
        assert st == 201, raw
        return json.loads(raw)

    async def scenario():
        q = f"stream_id={sid}&sender_id={A}&receiver_id={B}"
        async with websockets.connect(f"{h.ws_url}/chat/subscribe-websocket?{q}",
                                      open_timeout=10) as ws:
            got = []

            async def recv_until(n, timeout):
                end = time.time() + timeout
                while len(got) < n and time.time() < end:
                    try:
                        got.append(json.loads(await asyncio.wait_for(ws.recv(), 1))["content"])
                    except asyncio.TimeoutError:
                        pass
                return list(got)

            loop = asyncio.get_running_loop()
            # 1. live: the first record may wait for the group to form
            await loop.run_in_executor(None, post, "live-1")
            assert await recv_until(1, 60) == ["live-1"]

            # 2. the broker stops answering: produces time out, the rows stay
            os.kill(kafka_pid, signal.SIGSTOP)
            try:
                for c in ("while-down-1", "while-down-2", "while-down-3"):
                    await loop.run_in_executor(None, post, c)
                await loop.run_in_executor(None, lambda: wait_until(
                    lambda: metric(p, "chat_persistence_relay_publish_errors_total") >= 1,
                    30, "produce errors"))
            finally:
                os.kill(kafka_pid, signal.SIGCONT)

            # 3. catch-up from the outbox delivers what was stored meanwhile
            await recv_until(4, 90)
            # 4. and the relay is live again
            await loop.run_in_executor(None, post, "live-2")
            await recv_until(5, 60)
            # nothing comes twice (a record the broker did get before the
            # timeout is published again, the handler's dedupe drops it)
            await asyncio.sleep(1.5)
            while True:
                try:
                    got.append(json.loads(await asyncio.wait_for(ws.recv(), 0.5))["content"])
                except asyncio.TimeoutError:
                    break
            return got

    got = asyncio.run(asyncio.wait_for(scenario(), 300))
    assert sorted(got) == sorted(["live-1", "while-down-1", "while-down-2", "while-down-3",
                                  "live-2"]), got
    assert "change relay: recovered" in p.read_log()
    assert metric(p, "chat_persistence_relay_published_total") >= 5
    # every message stored once
    st, raw, _ = http("GET", f"{p.url}/chat/streams/{sid}/messages")
    assert st == 200 and len(json.loads(raw)["messages"]) == 5
