"""chat_ws plugin against a running notifd, with real websocket clients
(Debian's python3-websockets 10.4, plus raw sockets where a client must
misbehave).

Covers: the Go integration test 11 (three sockets on one stream, three
messages each, in order, equal to what was sent including the zero
created_at), the exact Go serialization of frames, two participants,
disconnect then forward (200, delivered 0), missing parameters (400, daemon
alive), invalid bodies (400 naming the field), JWT auth (absent, bad,
expired, wrong subject), verify_stream_id, the Origin allow-list, a slow
consumer cut off while a fast one on the same key keeps receiving, an
oversize client frame, client frames ignored, the close-stream endpoint
and the internal auth of the service endpoints.
"""
import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import socket
import time

import pytest
import websockets

from conftest import apost, checked_exits, http, plugin_yaml, run

JWT_SECRET = "chat-ws-test-secret"
INTERNAL = "chat-ws-internal-token"
AUTH_YAML = f"auth: {{jwt_secret: {JWT_SECRET}, internal_token: {INTERNAL}}}\n"
STREAM_AB = "6b79c4fda3031c04"  # ComputeStreamID("Mr.A", "Mr.B"), contract 2.6
ZERO_TIME = "0001-01-01T00:00:00Z"


# ---- helpers ---------------------------------------------------------------

@pytest.fixture
def notifd_factory(notifd_factory):
    """conftest's factory, plus the clean-exit check (conftest.checked_exits)."""
    yield from checked_exits(notifd_factory)


def start(notifd_factory, extra_yaml="", **config):
    return notifd_factory(plugins_yaml=plugin_yaml("chat_ws", **config),
                          extra_yaml=AUTH_YAML + extra_yaml)


def sub_url(n, stream=STREAM_AB, sender="Mr.A", receiver="Mr.B", token=None):
    q = f"stream_id={stream}&sender_id={sender}&receiver_id={receiver}"
    if token:
        q += f"&token={token}"
    return f"{n.ws_url}/chat/subscribe-websocket?{q}"


def connect(url, **kw):
    kw.setdefault("open_timeout", 10)
    kw.setdefault("max_queue", None)
    return websockets.connect(url, **kw)


def message(i, content, sender="Mr.A", receiver="Mr.B", stream=STREAM_AB):
    """stub.CreateChatMessages: message_id_<i>, zero created_at."""
    return {"message_id": f"message_id_{i}", "content": content, "created_at": ZERO_TIME,
            "stream_id": stream, "sender_id": sender, "receiver_id": receiver}


def go_json(msg):
    """The frame Go's json.Marshal writes for a ChatMessage with plain ASCII."""
    keys = ["message_id", "content", "created_at", "stream_id", "sender_id", "receiver_id"]
    return "{" + ",".join(f"{json.dumps(k)}:{json.dumps(msg[k])}" for k in keys) + "}"


async def recv_json(ws, timeout=5):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def assert_silent(ws, wait=0.3):
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(ws.recv(), wait)


def jwt(sub, exp_in=300, secret=JWT_SECRET, alg="HS256"):
    def b64(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    header = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    claims = {"sub": sub, "exp": int(time.time()) + exp_in}
    payload = b64(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(sig)}"


def metric(n, name, **labels):
    total = 0.0
    found = False
    for line in n.metrics().splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
            found = True
    return total if found else None


def forward(n, msg, headers=None):
    st, body, hdrs = http("POST", f"{n.url}/chat/forward-to-websocket", msg, headers)
    return st, json.loads(body) if body else None, hdrs


def upgrade_status(n, url_path, headers=None):
    """Status of a raw websocket upgrade request (no client library)."""
    key = base64.b64encode(os.urandom(16)).decode()
    req = (f"GET {url_path} HTTP/1.1\r\nHost: 127.0.0.1:{n.port}\r\nUpgrade: websocket\r\n"
           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n")
    for k, v in (headers or {}).items():
        req += f"{k}: {v}\r\n"
    with socket.create_connection(("127.0.0.1", n.port), timeout=5) as s:
        s.sendall((req + "\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ")[1])
        m = re.search(rb"content-length: *(\d+)", head, re.I)
        while m and len(rest) < int(m.group(1)):
            chunk = s.recv(4096)
            if not chunk:
                break
            rest += chunk
        return status, rest


# ---- Go integration test 11 ------------------------------------------------

def test_go_three_sockets_one_stream_receive_three_messages_in_order(notifd_factory):
    n = start(notifd_factory)
    sent = [message(0, "Hello"), message(1, "How are you?"), message(2, "Goodbye")]

    async def scenario():
        async with connect(sub_url(n, sender="Mr.A", receiver="Mr.B")) as a, \
                connect(sub_url(n, sender="Mr.B", receiver="Mr.A")) as b, \
                connect(sub_url(n, sender="Mr.A", receiver="Mr.B")) as a2:
            for msg in sent:
                st, body, hdrs = await apost(f"{n.url}/chat/forward-to-websocket", msg)
                assert st == 200, body
                assert hdrs["Content-Type"] == "application/json; charset=utf-8"
                assert body == f'{{"delivered":3,"stream_id":"{STREAM_AB}"}}'.encode()
            for ws in (a, b, a2):
                raw = [await asyncio.wait_for(ws.recv(), 5) for _ in sent]
                assert [json.loads(r) for r in raw] == sent
                # byte-exact: the Go struct's field order and zero created_at
                assert raw == [go_json(m) for m in sent]
                await assert_silent(ws)

    run(scenario())
    assert metric(n, "chat_ws_forwards_total", result="delivered") == 3


def test_frame_is_the_message_reserialized_as_go_did(notifd_factory):
    n = start(notifd_factory)
    body = ('{"Message_ID":"m-1","content":"<b>\\u2028&\\u00e9\\ud83d\\ude00\\ufffd\\u0001",'
            '"created_at":"2024-05-06T07:08:09.120000000+07:00","extra":{"x":[1]},'
            '"STREAM_ID":"s-1","sender_id":"a","receiver_id":"b"} trailing bytes are ignored')
    want = ('{"message_id":"m-1","content":"\\u003cb\\u003e\\u2028\\u0026\u00e9\U0001F600'
            '\ufffd\\u0001","created_at":"2024-05-06T07:08:09.12+07:00","stream_id":"s-1",'
            '"sender_id":"a","receiver_id":"b"}')

    async def scenario():
        async with connect(sub_url(n, stream="s-1", sender="a", receiver="b")) as ws:
            st, resp, _ = await apost(f"{n.url}/chat/forward-to-websocket", body.encode())
            assert st == 200, resp
            assert json.loads(resp) == {"delivered": 1, "stream_id": "s-1"}
            frame = await asyncio.wait_for(ws.recv(), 5)
            assert frame == want

    run(scenario())


def test_two_participants_on_one_stream(notifd_factory):
    n = start(notifd_factory, verify_stream_id="true")
    stream = "3216fea9031bf845"  # ComputeStreamID("sender-a", "receiver-b")

    async def scenario():
        async with connect(sub_url(n, stream, "sender-a", "receiver-b")) as a, \
                connect(sub_url(n, stream, "receiver-b", "sender-a")) as b:
            for i, (frm, to) in enumerate([("sender-a", "receiver-b"), ("receiver-b", "sender-a")]):
                msg = message(i, f"hi from {frm}", frm, to, stream)
                st, resp, _ = await apost(f"{n.url}/chat/forward-to-websocket", msg)
                assert st == 200 and json.loads(resp)["delivered"] == 2
                assert await recv_json(a) == msg
                assert await recv_json(b) == msg

    run(scenario())


def test_disconnect_then_forward_returns_200_with_zero_delivered(notifd_factory):
    n = start(notifd_factory)

    async def scenario():
        ws = await connect(sub_url(n))
        st, resp, _ = await apost(f"{n.url}/chat/forward-to-websocket", message(0, "one"))
        assert json.loads(resp) == {"delivered": 1, "stream_id": STREAM_AB}
        await ws.close()  # clean close handshake
        st, resp, _ = await apost(f"{n.url}/chat/forward-to-websocket", message(1, "two"))
        assert st == 200 and json.loads(resp) == {"delivered": 0, "stream_id": STREAM_AB}

        # An abrupt disconnect (no close frame): never a 206/500, and 0 soon.
        ws = await connect(sub_url(n))
        ws.transport.abort()
        deadline = time.time() + 5
        while True:
            st, resp, _ = await apost(f"{n.url}/chat/forward-to-websocket", message(2, "three"))
            assert st == 200, resp
            if json.loads(resp)["delivered"] == 0:
                break
            assert time.time() < deadline, "the aborted socket was never removed"
            await asyncio.sleep(0.05)

    run(scenario())
    assert metric(n, "notifd_ws_connections", channel="/chat/subscribe-websocket") == 0
    assert metric(n, "chat_ws_forwards_total", result="no_subscribers") >= 2


def test_missing_params_get_400_and_the_daemon_stays_up(notifd_factory):
    n = start(notifd_factory)
    cases = {
        "/chat/subscribe-websocket?sender_id=a&receiver_id=b": "stream_id query parameter required",
        f"/chat/subscribe-websocket?stream_id=s&receiver_id=b": "sender_id query parameter required",
        f"/chat/subscribe-websocket?stream_id=s&sender_id=a": "receiver_id query parameter required",
        f"/chat/subscribe-websocket?stream_id=s&sender_id=&receiver_id=b":
            "sender_id query parameter required",
        "/chat/subscribe-websocket": "stream_id query parameter required",
    }
    for path, text in cases.items():
        status, body = upgrade_status(n, path)
        assert status == 400, (path, body)
        assert json.loads(body) == {"error": text}
    # A plain GET (no upgrade) is refused too, without a crash.
    st, body, _ = http("GET", f"{n.url}/chat/subscribe-websocket?stream_id=s&sender_id=a&receiver_id=b")
    assert st == 400
    assert n.proc.poll() is None
    assert http("GET", f"{n.url}/healthz")[0] == 200

    async def still_works():
        async with connect(sub_url(n)) as ws:
            await apost(f"{n.url}/chat/forward-to-websocket", message(0, "alive"))
            assert (await recv_json(ws))["content"] == "alive"

    run(still_works())


@pytest.mark.parametrize("body,status,error", [
    (b"", 400, "EOF"),
    (b"{\"content\":", 400, "unexpected EOF"),
    (b"not json", 400, "invalid character 'o' in literal null (expecting 'u')"),
    (b"[1]", 400, "json: cannot unmarshal array into Go value of type model.ChatMessage"),
    (b'{"content":5,"stream_id":"s","sender_id":"a","receiver_id":"b"}', 400,
     "json: cannot unmarshal number into Go struct field ChatMessage.content of type string"),
    (b'{"content":"x","stream_id":7,"sender_id":"a","receiver_id":"b"}', 400,
     "json: cannot unmarshal number into Go struct field ChatMessage.ChatMetadata.stream_id "
     "of type string"),
    (b'{"content":"x","stream_id":"s","sender_id":"a","receiver_id":"b","created_at":"today"}',
     400, 'parsing time "today" as "2006-01-02T15:04:05Z07:00": cannot parse "today" as "2006"'),
    (b'{"content":"","stream_id":"s","sender_id":"a","receiver_id":"b"}', 400,
     "Key: 'ChatMessage.Content' Error:Field validation for 'Content' failed on the 'required' tag"),
    (b'{"content":"x","stream_id":"","sender_id":"a","receiver_id":"b"}', 400,
     "Key: 'ChatMessage.ChatMetadata.StreamID' Error:Field validation for 'StreamID' failed on "
     "the 'required' tag"),
    (b'{"content":"x","stream_id":"s","receiver_id":"b"}', 400,
     "Key: 'ChatMessage.ChatMetadata.SenderID' Error:Field validation for 'SenderID' failed on "
     "the 'required' tag"),
    (b'{"content":"x","stream_id":"s","sender_id":"a","receiver_id":null}', 400,
     "Key: 'ChatMessage.ChatMetadata.ReceiverID' Error:Field validation for 'ReceiverID' failed "
     "on the 'required' tag"),
    (b'{"content":"x","stream_id":"s","sender_id":"a","receiver_id":"b",'
     b'"created_at":"2024-01-01T00:00:00+24:00"}', 500, "failed to serialize message"),
])
def test_invalid_forward_bodies(notifd_factory, body, status, error):
    n = start(notifd_factory)
    st, resp, hdrs = http("POST", f"{n.url}/chat/forward-to-websocket", body)
    assert st == status, resp
    assert hdrs["Content-Type"] == "application/json; charset=utf-8"
    assert json.loads(resp) == {"error": error}


def test_all_missing_fields_are_listed_one_per_line(notifd_factory):
    n = start(notifd_factory)
    st, resp, _ = http("POST", f"{n.url}/chat/forward-to-websocket", b"{}")
    assert st == 400
    lines = json.loads(resp)["error"].split("\n")
    assert [re.search(r"for '(\w+)'", l).group(1) for l in lines] == \
        ["Content", "StreamID", "SenderID", "ReceiverID"]
    assert metric(n, "chat_ws_forwards_total", result="invalid") == 1


def test_token_auth_on_subscribe(notifd_factory):
    n = start(notifd_factory, auth="token", verify_stream_id="true")
    base = f"/chat/subscribe-websocket?stream_id={STREAM_AB}&sender_id=Mr.A&receiver_id=Mr.B"
    rejected = {
        "absent": (base, {}),
        "garbage": (base + "&token=not.a.jwt", {}),
        "bad signature": (base + "&token=" + jwt("Mr.A", secret="other-secret"), {}),
        "expired": (base + "&token=" + jwt("Mr.A", exp_in=-60), {}),
        "not a participant": (base, {"Authorization": "Bearer " + jwt("Mr.C")}),
        "alg none": (base + "&token=" + jwt("Mr.A", alg="none"), {}),
    }
    for what, (path, headers) in rejected.items():
        status, body = upgrade_status(n, path, headers)
        # A valid token of someone else is forbidden, not unauthenticated.
        assert status == (403 if what == "not a participant" else 401), (what, body)
        assert "error" in json.loads(body)
    assert metric(n, "notifd_ws_connections", channel="/chat/subscribe-websocket") == 0

    async def accepted():
        async with connect(sub_url(n, token=jwt("Mr.A"))) as a, \
                connect(sub_url(n), extra_headers={"Authorization": "Bearer " + jwt("Mr.B")}) as b:
            await apost(f"{n.url}/chat/forward-to-websocket", message(0, "authed"))
            assert (await recv_json(a))["content"] == "authed"
            assert (await recv_json(b))["content"] == "authed"

    run(accepted())


def test_verify_stream_id(notifd_factory):
    n = start(notifd_factory, verify_stream_id="true")
    status, body = upgrade_status(
        n, "/chat/subscribe-websocket?stream_id=0000000000000000&sender_id=Mr.A&receiver_id=Mr.B")
    assert status == 400
    assert json.loads(body) == {"error": "stream_id does not match sender_id and receiver_id"}
    # " sender-b" (leading space) sorts first: contract 2.6 vector.
    status, _ = upgrade_status(
        n, "/chat/subscribe-websocket?stream_id=1a80ecedf209e276&sender_id=sender-a"
           "&receiver_id=%20sender-b")
    assert status == 101


def test_origin_allow_list(notifd_factory):
    n = start(notifd_factory,
              extra_yaml="websocket: {allowed_origins: ['https://chat.example']}\n")
    path = f"/chat/subscribe-websocket?stream_id={STREAM_AB}&sender_id=Mr.A&receiver_id=Mr.B"
    status, body = upgrade_status(n, path, {"Origin": "https://evil.example"})
    assert status == 403
    assert json.loads(body) == {"error": "origin not allowed"}
    assert upgrade_status(n, path, {"Origin": "https://chat.example"})[0] == 101

    async def browser_from_elsewhere():
        async with connect(sub_url(n), origin="https://evil.example"):
            pass

    with pytest.raises(websockets.exceptions.InvalidStatusCode) as e:
        run(browser_from_elsewhere())
    assert e.value.status_code == 403
    assert metric(n, "notifd_ws_handshake_rejects_total", reason="origin") == 2


class RawWsClient:
    """A websocket client that completes the handshake and then never reads:
    a slow consumer with a tiny receive buffer."""

    def __init__(self, port, path):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def close(self):
        self.sock.close()


def test_slow_consumer_is_cut_off_while_a_fast_one_keeps_receiving(notifd_factory):
    n = start(notifd_factory, extra_yaml="websocket: {max_queue_bytes: 131072}\n")
    path = f"/chat/subscribe-websocket?stream_id={STREAM_AB}&sender_id=Mr.A&receiver_id=Mr.B"
    content = "x" * 60000

    async def scenario():
        slow = RawWsClient(n.port, path)
        received = []
        try:
            async with connect(sub_url(n, sender="Mr.B", receiver="Mr.A"), max_size=None) as fast:
                async def reader():
                    async for frame in fast:
                        received.append(json.loads(frame)["message_id"])
                task = asyncio.create_task(reader())
                statuses = []
                for i in range(400):
                    st, resp, _ = await apost(f"{n.url}/chat/forward-to-websocket",
                                              message(i, content))
                    statuses.append((st, json.loads(resp)))
                    if st != 200:
                        break
                cut_at = len(statuses) - 1
                st, resp = statuses[-1]
                assert st == 206, statuses[-3:]
                assert resp["delivered"] == 1
                assert resp["message"] == \
                    "message delivered to some connections but encountered errors"
                assert "slow consumer" in resp["error"]
                assert all(s == 200 and r["delivered"] == 2 for s, r in statuses[:-1])
                # after the cut the fast one alone keeps getting everything
                for i in range(cut_at + 1, cut_at + 6):
                    st, resp, _ = await apost(f"{n.url}/chat/forward-to-websocket",
                                              message(i, "after"))
                    assert st == 200 and json.loads(resp)["delivered"] == 1
                deadline = time.time() + 20
                while len(received) < cut_at + 6 and time.time() < deadline:
                    await asyncio.sleep(0.05)
                assert received == [f"message_id_{i}" for i in range(cut_at + 6)]
                task.cancel()
        finally:
            slow.close()

    run(scenario(), timeout=120)
    assert metric(n, "notifd_ws_slow_consumer_closes_total",
                  channel="/chat/subscribe-websocket") == 1
    assert metric(n, "chat_ws_forwards_total", result="partial") == 1


def test_oversize_client_frame_closes_the_socket(notifd_factory):
    n = start(notifd_factory, extra_yaml="websocket: {max_message: 1024}\n")

    async def scenario():
        async with connect(sub_url(n)) as ws:
            await ws.send("y" * 1000)  # under the limit: ignored, socket stays
            await asyncio.sleep(0.1)
            await apost(f"{n.url}/chat/forward-to-websocket", message(0, "still open"))
            assert (await recv_json(ws))["content"] == "still open"
            await ws.send("z" * 2000)
            with pytest.raises(websockets.exceptions.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 1009

    run(scenario())
    st, resp, _ = forward(n, message(1, "gone"))
    assert st == 200 and resp["delivered"] == 0


def test_client_frames_are_ignored(notifd_factory):
    n = start(notifd_factory)

    async def scenario():
        async with connect(sub_url(n)) as ws:
            await ws.send('{"content":"from the client"}')
            await ws.send(b"\x00\x01binary")
            await ws.ping()
            await assert_silent(ws)
            await apost(f"{n.url}/chat/forward-to-websocket", message(0, "server"))
            assert (await recv_json(ws))["content"] == "server"

    run(scenario())


def test_close_stream_endpoint(notifd_factory):
    n = start(notifd_factory)
    url = f"{n.url}/chat/streams/{STREAM_AB}/close"

    async def scenario():
        async with connect(sub_url(n)) as a, connect(sub_url(n, sender="Mr.B", receiver="Mr.A")) as b, \
                connect(sub_url(n, stream="other", sender="x", receiver="y")) as other:
            st, resp, _ = await apost(url, b"")
            assert st == 401, resp  # internal by default
            st, resp, _ = await apost(url, b"", {"X-Notifd-Internal-Token": "wrong"})
            assert st == 401
            st, resp, _ = await apost(url, b"", {"X-Notifd-Internal-Token": INTERNAL})
            assert st == 200 and json.loads(resp) == {"closed": 2}
            for ws in (a, b):
                with pytest.raises(websockets.exceptions.ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 5)
                assert ws.close_code == 4001
                assert ws.close_reason == "retries exhausted, reload history"
            st, resp, _ = await apost(f"{n.url}/chat/forward-to-websocket", message(0, "x"))
            assert json.loads(resp)["delivered"] == 0
            await apost(f"{n.url}/chat/forward-to-websocket",
                        message(1, "y", "x", "y", stream="other"))
            assert (await recv_json(other))["content"] == "y"
            st, resp, _ = await apost(url, b"", {"X-Notifd-Internal-Token": INTERNAL})
            assert json.loads(resp) == {"closed": 0}

    run(scenario())
    assert metric(n, "chat_ws_stream_closes_total") == 2


def test_forward_internal_auth(notifd_factory):
    n = start(notifd_factory, forward_auth="internal", close_auth="none")
    st, _, _ = forward(n, message(0, "x"))
    assert st == 401
    st, resp, _ = forward(n, message(0, "x"), {"X-Notifd-Internal-Token": INTERNAL})
    assert st == 200 and resp == {"delivered": 0, "stream_id": STREAM_AB}
    st, body, _ = http("POST", f"{n.url}/chat/streams/s/close", b"")
    assert st == 200 and json.loads(body) == {"closed": 0}


def test_bad_plugin_config_fails_startup(notifd_factory):
    n = notifd_factory(plugins_yaml=plugin_yaml("chat_ws", auth="maybe", bogus_key=1), start=False)
    with pytest.raises(RuntimeError) as e:
        n.start()
    log = str(e.value)
    assert "auth" in log and "maybe" in log


def test_per_key_connection_limit(notifd_factory):
    n = start(notifd_factory, extra_yaml="websocket: {max_connections_per_key: 2}\n")
    path = f"/chat/subscribe-websocket?stream_id={STREAM_AB}&sender_id=Mr.A&receiver_id=Mr.B"

    async def scenario():
        async with connect(sub_url(n)) as a, connect(sub_url(n)):
            status, body = upgrade_status(n, path)
            assert status == 429, body
            assert upgrade_status(n, path.replace(STREAM_AB, "another"))[0] == 101
            st, resp, _ = await apost(f"{n.url}/chat/forward-to-websocket", message(0, "two"))
            assert json.loads(resp)["delivered"] == 2
            assert (await recv_json(a))["content"] == "two"

    run(scenario())


def test_graceful_shutdown_closes_sockets_with_1001(notifd_factory):
    n = start(notifd_factory)

    async def scenario():
        async with connect(sub_url(n)) as ws:
            await asyncio.get_running_loop().run_in_executor(None, n.proc.terminate)
            with pytest.raises(websockets.exceptions.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
            assert ws.close_code == 1001

    run(scenario())
    assert n.proc.wait(timeout=15) == 0
