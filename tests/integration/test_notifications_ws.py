"""notifications_ws plugin against a running notifd, with real websocket
clients (Debian's python3-websockets 10.4) and the embedded bus fed by the
operator tool `notifd bus produce`.

Covers: the Go integration tests 12-16 (chat, payment reminder, purchase,
multiple devices, shipping update: 200 each, frames of the right type with
payloads equal to what was sent, in order), the envelope and payload
serialization (field order, zero values, floats, zones kept), the order of
the 400 checks (body, then user_id) with Go's texts, disconnect then POST
(200, delivered 0), missing user_id on subscribe (400, daemon alive), JWT
auth, internal auth of the POST endpoints, and the bus topic: records
delivered, user_id from the key, poison records dropped without blocking
the ones behind them, delivery with no subscriber acked.
"""
import asyncio
import base64
import datetime
import hashlib
import hmac
import json
import os
import re
import socket
import subprocess
import time

import pytest
import websockets

from conftest import NOTIFD, apost, checked_exits, http, plugin_yaml, run, wait_until

JWT_SECRET = "notif-ws-test-secret"
INTERNAL = "notif-ws-internal-token"
AUTH_YAML = f"auth: {{jwt_secret: {JWT_SECRET}, internal_token: {INTERNAL}}}\n"
ZERO_TIME = "0001-01-01T00:00:00Z"
TYPES = {"chat": "chat_notification", "purchase": "purchase_notification",
         "payment-reminder": "payment_reminder_notification",
         "shipping-update": "shipping_update_notification"}


# ---- helpers ---------------------------------------------------------------

@pytest.fixture
def notifd_factory(notifd_factory):
    """conftest's factory, plus the clean-exit check (conftest.checked_exits)."""
    yield from checked_exits(notifd_factory)


def start(notifd_factory, extra_yaml="", **config):
    return notifd_factory(plugins_yaml=plugin_yaml("notifications_ws", **config),
                          extra_yaml=AUTH_YAML + extra_yaml)


def sub_url(n, user, token=None):
    url = f"{n.ws_url}/notifications/subscribe?user_id={user}"
    return url + (f"&token={token}" if token else "")


def connect(url, **kw):
    kw.setdefault("open_timeout", 10)
    kw.setdefault("max_queue", None)
    return websockets.connect(url, **kw)


async def recv_json(ws, timeout=5):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def assert_silent(ws, wait=0.3):
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(ws.recv(), wait)


def go_time(dt):
    """time.Time.MarshalJSON: RFC 3339, fraction trimmed, Z for UTC."""
    s = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if dt.microsecond:
        s += (".%06d" % dt.microsecond).rstrip("0")
    off = dt.utcoffset()
    if not off:
        return s + "Z"
    mins = int(off.total_seconds()) // 60
    sign = "+" if mins >= 0 else "-"
    return s + "%s%02d:%02d" % (sign, abs(mins) // 60, abs(mins) % 60)


BANGKOK = datetime.timezone(datetime.timedelta(hours=7))


def now(tz=datetime.timezone.utc):
    return datetime.datetime.now(tz)


def chat_message(i, content, sender="Mr.A", receiver="Mr.B"):
    return {"message_id": f"message_id_{i}", "content": content, "created_at": ZERO_TIME,
            "stream_id": "6b79c4fda3031c04", "sender_id": sender, "receiver_id": receiver}


def purchase(order, product, amount, when=None):
    return {"order_id": order, "buyer_id": "buyer-default", "shop_owner_id": "shop-owner-default",
            "product_name": product, "amount": amount, "currency": "USD", "status": "confirmed",
            "purchased_at": go_time(when or now())}


def jwt(sub, exp_in=300, secret=JWT_SECRET):
    def b64(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    header = b64(b'{"alg":"HS256","typ":"JWT"}')
    payload = b64(json.dumps({"sub": sub, "exp": int(time.time()) + exp_in}).encode())
    sig = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(sig)}"


def metric(n, name, **labels):
    total, found = 0.0, False
    for line in n.metrics().splitlines():
        if not (line.startswith(name + "{") or line.startswith(name + " ")):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
            found = True
    return total if found else None


def notify(n, kind, user, payload, headers=None):
    url = f"{n.url}/notifications/{kind}" + (f"?user_id={user}" if user is not None else "")
    st, body, hdrs = http("POST", url, payload, headers)
    return st, json.loads(body) if body else None


def check_envelope(frame, kind, payload):
    env = json.loads(frame)
    assert list(env) == ["notification_type", "timestamp", "payload"]
    assert env["notification_type"] == TYPES[kind]
    ts = re.sub(r"(\.\d{1,6})\d*", r"\1", env["timestamp"]).replace("Z", "+00:00")
    assert abs((datetime.datetime.fromisoformat(ts) - now()).total_seconds()) < 60
    assert env["payload"] == payload
    return env


def produce(n, value, key=None, topic="notifications"):
    args = [NOTIFD, "bus", "produce", "-d", n.data_dir]
    if key is not None:
        args += ["-k", key]
    args += [topic, value if isinstance(value, str) else json.dumps(value)]
    r = subprocess.run(args, capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr.decode()


def upgrade_status(n, path):
    key = base64.b64encode(os.urandom(16)).decode()
    with socket.create_connection(("127.0.0.1", n.port), timeout=5) as s:
        s.sendall((f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        m = re.search(rb"content-length: *(\d+)", head, re.I)
        while m and len(rest) < int(m.group(1)):
            rest += s.recv(4096)
        return int(head.split(b" ")[1]), rest


# ---- Go integration tests 12-16 --------------------------------------------

def test_go_chat_notification(notifd_factory):
    n = start(notifd_factory)
    sent = [chat_message(0, "Hello"), chat_message(1, "How are you?"), chat_message(2, "Goodbye")]

    async def scenario():
        async with connect(sub_url(n, "Mr.A")) as ws:
            for msg in sent:
                st, body, hdrs = await apost(f"{n.url}/notifications/chat?user_id=Mr.A", msg)
                assert st == 200, body
                assert hdrs["Content-Type"] == "application/json; charset=utf-8"
                assert body == (b'{"delivered":1,"notification_type":"chat_notification",'
                                b'"user_id":"Mr.A"}')
            for msg in sent:
                check_envelope(await asyncio.wait_for(ws.recv(), 5), "chat", msg)
            await assert_silent(ws)

    run(scenario())


def test_go_payment_reminder_notification(notifd_factory):
    n = start(notifd_factory)
    due = now() + datetime.timedelta(days=7)
    sent = [
        {"order_id": "ORD-001", "amount": 15.99, "currency": "USD", "due_date": go_time(due),
         "days_overdue": 0, "message": "Payment due soon"},
        {"order_id": "ORD-002", "amount": 29.99, "currency": "USD",
         "due_date": go_time(due.astimezone(BANGKOK)), "days_overdue": 3,
         "message": "Payment overdue by 3 days"},
    ]

    async def scenario():
        async with connect(sub_url(n, "user789")) as ws:
            for p in sent:
                st, body, _ = await apost(f"{n.url}/notifications/payment-reminder?user_id=user789", p)
                assert st == 200 and json.loads(body)["delivered"] == 1, body
            for p in sent:
                check_envelope(await asyncio.wait_for(ws.recv(), 5), "payment-reminder", p)

    run(scenario())


def test_go_purchase_notification(notifd_factory):
    n = start(notifd_factory)
    sent = [purchase("ORD-001", "Premium Coffee", 15.99), purchase("ORD-002", "Wireless Mouse", 29.99),
            purchase("ORD-003", "Notebook Set", 12.50, now(BANGKOK))]

    async def scenario():
        async with connect(sub_url(n, "user123")) as ws:
            for p in sent:
                st, body, _ = await apost(f"{n.url}/notifications/purchase?user_id=user123", p)
                assert st == 200 and json.loads(body) == {
                    "delivered": 1, "notification_type": "purchase_notification",
                    "user_id": "user123"}
            frames = [await asyncio.wait_for(ws.recv(), 5) for _ in sent]
            for frame, p in zip(frames, sent):
                check_envelope(frame, "purchase", p)
            assert '"amount":12.5,' in frames[2]
            assert '"amount":15.99,' in frames[0]

    run(scenario())


def test_go_multiple_devices_receive_purchase_notification(notifd_factory):
    n = start(notifd_factory)
    p = purchase("ORD-100", "Laptop", 999.99)

    async def scenario():
        async with connect(sub_url(n, "user456")) as a, connect(sub_url(n, "user456")) as b, \
                connect(sub_url(n, "user456")) as c, connect(sub_url(n, "someone-else")) as other:
            st, body, _ = await apost(f"{n.url}/notifications/purchase?user_id=user456", p)
            assert st == 200 and json.loads(body)["delivered"] == 3
            frames = [await asyncio.wait_for(ws.recv(), 5) for ws in (a, b, c)]
            for f in frames:
                check_envelope(f, "purchase", p)
            assert frames[0] == frames[1] == frames[2]  # one encoding for all
            await assert_silent(other)

    run(scenario())


def test_go_shipping_update_notification(notifd_factory):
    n = start(notifd_factory)
    eta, upd = now() + datetime.timedelta(hours=48), now()
    sent = [{"order_id": "ORD-001", "tracking_number": "TRK123456", "status": s, "location": loc,
             "estimated_delivery": go_time(eta), "updated_at": go_time(upd)}
            for s, loc in [("in_transit", "New York Distribution Center"),
                           ("out_for_delivery", "Local Delivery Hub"),
                           ("delivered", "Customer Address")]]

    async def scenario():
        async with connect(sub_url(n, "user999")) as ws:
            for p in sent:
                st, body, _ = await apost(f"{n.url}/notifications/shipping-update?user_id=user999", p)
                assert st == 200, body
            for p in sent:
                check_envelope(await asyncio.wait_for(ws.recv(), 5), "shipping-update", p)

    run(scenario())


# ---- serialization, validation, lifecycle -------------------------------------

def test_payload_is_go_serialized_with_zero_values(notifd_factory):
    n = start(notifd_factory)

    async def scenario():
        async with connect(sub_url(n, "u1")) as ws:
            body = (b'{"Order_ID":"ORD-<1>","STATUS":"in_transit","bogus":true,'
                    b'"updated_at":"2025-03-04T05:06:07.100+05:30","location":null}')
            st, resp, _ = await apost(f"{n.url}/notifications/shipping-update?user_id=u1", body)
            assert st == 200, resp
            frame = await asyncio.wait_for(ws.recv(), 5)
            assert frame.startswith('{"notification_type":"shipping_update_notification",'
                                    '"timestamp":"')
            assert frame.endswith(
                ',"payload":{"order_id":"ORD-\\u003c1\\u003e","tracking_number":"",'
                '"status":"in_transit","location":"","estimated_delivery":"0001-01-01T00:00:00Z",'
                '"updated_at":"2025-03-04T05:06:07.1+05:30"}}')
            ts = re.search(r'"timestamp":"([^"]+)"', frame).group(1)
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)", ts)
            assert not re.search(r"\.\d*0(Z|[+-])", ts)  # trailing zeros trimmed

            st, resp, _ = await apost(f"{n.url}/notifications/payment-reminder?user_id=u1",
                                      {"order_id": "o", "amount": 1e21, "currency": "EUR",
                                       "due_date": "2025-01-01T00:00:00Z"})
            assert st == 200, resp
            frame = await asyncio.wait_for(ws.recv(), 5)
            assert frame.endswith('"payload":{"order_id":"o","amount":1e+21,"currency":"EUR",'
                                  '"due_date":"2025-01-01T00:00:00Z","days_overdue":0,'
                                  '"message":""}}')

    run(scenario())


@pytest.mark.parametrize("kind,user,body,error", [
    # the body is checked before user_id
    ("purchase", None, b"", "EOF"),
    ("purchase", None, b"{}",
     "Key: 'PurchaseUpdate.OrderID' Error:Field validation for 'OrderID' failed on the 'required' tag\n"
     "Key: 'PurchaseUpdate.BuyerID' Error:Field validation for 'BuyerID' failed on the 'required' tag\n"
     "Key: 'PurchaseUpdate.ShopOwnerID' Error:Field validation for 'ShopOwnerID' failed on the "
     "'required' tag\n"
     "Key: 'PurchaseUpdate.ProductName' Error:Field validation for 'ProductName' failed on the "
     "'required' tag\n"
     "Key: 'PurchaseUpdate.Amount' Error:Field validation for 'Amount' failed on the 'required' tag\n"
     "Key: 'PurchaseUpdate.Currency' Error:Field validation for 'Currency' failed on the "
     "'required' tag\n"
     "Key: 'PurchaseUpdate.Status' Error:Field validation for 'Status' failed on the 'required' tag"),
    ("purchase", "u", {**purchase("o", "p", 0)},
     "Key: 'PurchaseUpdate.Amount' Error:Field validation for 'Amount' failed on the 'required' tag"),
    ("purchase", "u", {**purchase("o", "p", 1), "amount": "1"},
     "json: cannot unmarshal string into Go struct field PurchaseUpdate.amount of type float64"),
    ("purchase", "u", {**purchase("o", "p", 1), "purchased_at": "2025-13-01T00:00:00Z"},
     'parsing time "2025-13-01T00:00:00Z": month out of range'),
    ("payment-reminder", "u", b'{"order_id":"o","amount":1,"currency":"USD",'
                              b'"due_date":"2025-01-01T00:00:00Z","days_overdue":3.5}',
     "json: cannot unmarshal number 3.5 into Go struct field PaymentReminder.days_overdue of type int"),
    ("payment-reminder", "u", {"order_id": "o", "amount": 1, "currency": "USD"},
     "Key: 'PaymentReminder.DueDate' Error:Field validation for 'DueDate' failed on the 'required' tag"),
    ("payment-reminder", "u", {"order_id": "o", "amount": 1, "currency": "USD", "due_date": 5},
     "Time.UnmarshalJSON: input is not a JSON string"),
    ("shipping-update", "u", {"order_id": "o"},
     "Key: 'ShippingUpdate.Status' Error:Field validation for 'Status' failed on the 'required' tag"),
    ("chat", "u", {"content": "x", "stream_id": "s", "sender_id": ["a"], "receiver_id": "b"},
     "json: cannot unmarshal array into Go struct field ChatMessage.ChatMetadata.sender_id of "
     "type string"),
    # then user_id
    ("shipping-update", None, {"order_id": "o", "status": "s"}, "user_id query parameter required"),
    ("shipping-update", "", {"order_id": "o", "status": "s"}, "user_id query parameter required"),
    # what the event stream's consumers would dead-letter (found by the
    # API fuzzer, test_openapi.py): stored, pushed, then dropped by email
    ("shipping-update", "u" * 257, {"order_id": "o", "status": "s"}, "user_id: at most 256 bytes"),
    ("purchase", "a%09b", purchase("o", "p", 1), "user_id: no control characters"),
    ("chat", "a%0Ab", chat_message(0, "x"), "user_id: no control characters"),
])
def test_invalid_requests_get_400_naming_the_field(notifd_factory, kind, user, body, error):
    n = start(notifd_factory)
    st, resp = notify(n, kind, user, body)
    assert st == 400
    assert resp == {"error": error}


def test_unserializable_time_gives_500_like_go(notifd_factory):
    n = start(notifd_factory)
    st, resp = notify(n, "shipping-update", "u", {"order_id": "o", "status": "s",
                                                   "updated_at": "2025-01-01T00:00:00+24:00"})
    assert st == 500 and resp == {"error": "failed to serialize notification"}


def test_disconnect_then_notify_returns_200_with_zero_delivered(notifd_factory):
    n = start(notifd_factory)

    async def scenario():
        ws = await connect(sub_url(n, "gone"))
        await ws.close()
        st, body, _ = await apost(f"{n.url}/notifications/chat?user_id=gone", chat_message(0, "x"))
        assert st == 200 and json.loads(body)["delivered"] == 0

    run(scenario())
    assert metric(n, "notifications_ws_forwards_total", source="http", type="chat",
                  result="no_subscribers") == 1


def test_missing_user_id_on_subscribe_is_400_and_daemon_alive(notifd_factory):
    n = start(notifd_factory)
    for path in ["/notifications/subscribe", "/notifications/subscribe?user_id="]:
        st, body = upgrade_status(n, path)
        assert st == 400 and json.loads(body) == {"error": "user_id query parameter required"}
    assert n.proc.poll() is None and http("GET", f"{n.url}/healthz")[0] == 200


def test_token_auth_on_subscribe_and_internal_auth_on_post(notifd_factory):
    n = start(notifd_factory, auth="token", forward_auth="internal")
    for path, status in [("/notifications/subscribe?user_id=alice", 401),
                         ("/notifications/subscribe?user_id=alice&token=" + jwt("bob"), 403),
                         ("/notifications/subscribe?user_id=alice&token="
                          + jwt("alice", exp_in=-120), 401),
                         ("/notifications/subscribe?user_id=alice&token="
                          + jwt("alice", secret="x"), 401)]:
        assert upgrade_status(n, path)[0] == status, path
    p = purchase("o", "p", 1)
    assert notify(n, "purchase", "alice", p)[0] == 401
    assert notify(n, "purchase", "alice", p, {"X-Notifd-Internal-Token": "nope"})[0] == 401

    async def scenario():
        async with connect(sub_url(n, "alice", token=jwt("alice"))) as ws:
            st, body, _ = await apost(f"{n.url}/notifications/purchase?user_id=alice", p,
                                      {"X-Notifd-Internal-Token": INTERNAL})
            assert st == 200 and json.loads(body)["delivered"] == 1
            check_envelope(await asyncio.wait_for(ws.recv(), 5), "purchase", p)

    run(scenario())


# ---- the bus topic -----------------------------------------------------------

def test_bus_records_are_delivered_and_poison_is_dropped(notifd_factory):
    n = start(notifd_factory)
    good = purchase("ORD-9", "Tea", 12.5)
    ship = {"order_id": "ORD-9", "tracking_number": "TRK1", "status": "shipped", "location": "",
            "estimated_delivery": ZERO_TIME, "updated_at": ZERO_TIME}

    async def scenario():
        async with connect(sub_url(n, "shop")) as ws, connect(sub_url(n, "keyed")) as keyed:
            loop = asyncio.get_running_loop()

            async def produce_async(*a, **kw):
                await loop.run_in_executor(None, lambda: produce(n, *a, **kw))

            # poison of every kind first: none of it may block what follows
            await produce_async("not json", key="p1")
            await produce_async({"type": "fax", "user_id": "shop", "payload": {}}, key="p2")
            await produce_async({"type": "purchase", "user_id": "shop",
                                 "payload": {"amount": "free"}}, key="p3")
            await produce_async({"type": "purchase", "payload": good})  # no user_id, no key
            await produce_async([1, 2], key="p5")
            await produce_async({"type": "purchase", "user_id": "shop"}, key="p6")
            await produce_async({"type": "purchase", "user_id": "shop", "payload": good}, key="shop")
            await produce_async({"type": "shipping_update_notification", "user_id": "shop",
                                 "payload": {"order_id": "ORD-9", "status": "shipped",
                                             "tracking_number": "TRK1"}}, key="shop")
            # user_id from the record key
            await produce_async({"type": "chat", "payload": chat_message(0, "via key")}, key="keyed")
            check_envelope(await asyncio.wait_for(ws.recv(), 15), "purchase", good)
            check_envelope(await asyncio.wait_for(ws.recv(), 15), "shipping-update", ship)
            check_envelope(await asyncio.wait_for(keyed.recv(), 15), "chat",
                           chat_message(0, "via key"))
            await assert_silent(ws)

    run(scenario())
    wait_until(lambda: metric(n, "notifications_ws_forwards_total", source="bus",
                              result="invalid") == 6, what="six poison records counted")
    for reason in ["invalid_json", "unknown_type", "invalid_payload", "missing_user_id",
                   "not_an_object", "missing_payload"]:
        assert metric(n, "notifd_bus_dropped_total", reason=reason) == 1, reason
    log = n.read_log()
    assert "json: cannot unmarshal string into Go struct field PurchaseUpdate.amount" in log


def test_user_ids_the_event_stream_cannot_carry_are_refused(notifd_factory):
    n = start(notifd_factory)
    ship = {"order_id": "o", "status": "s"}
    assert notify(n, "shipping-update", "u" * 256, ship)[0] == 200
    produce(n, {"type": "shipping-update", "user_id": "a\tb", "payload": ship}, key="k1")
    produce(n, {"type": "shipping-update", "user_id": "v" * 300, "payload": ship}, key="k2")
    produce(n, {"type": "shipping-update", "payload": ship}, key="k\x7f")
    wait_until(lambda: metric(n, "notifd_bus_dropped_total", reason="invalid_user_id") == 3,
               what="three records dropped as invalid_user_id")
    log = n.read_log()
    assert "user_id: no control characters" in log and "user_id: at most 256 bytes" in log


def test_bus_record_without_subscriber_is_acked(notifd_factory):
    n = start(notifd_factory, topic="shop-events", group="nws-test")
    produce(n, {"type": "payment-reminder", "user_id": "nobody",
                "payload": {"order_id": "o", "amount": 3, "currency": "EUR",
                            "due_date": "2024-06-01T00:00:00Z"}}, topic="shop-events")
    wait_until(lambda: metric(n, "notifications_ws_forwards_total", source="bus",
                              result="no_subscribers") == 1, what="record consumed")

    async def scenario():
        async with connect(sub_url(n, "late")) as ws:
            await asyncio.get_running_loop().run_in_executor(None, lambda: produce(
                n, {"type": "chat", "user_id": "late", "payload": chat_message(1, "hi")},
                topic="shop-events"))
            check_envelope(await asyncio.wait_for(ws.recv(), 15), "chat", chat_message(1, "hi"))
            await assert_silent(ws)  # the acked record is not redelivered

    run(scenario())
    assert not metric(n, "notifd_bus_dropped_total")


def test_bus_input_can_be_disabled(notifd_factory):
    n = start(notifd_factory, topic='""')
    produce(n, {"type": "chat", "user_id": "u", "payload": chat_message(0, "x")})
    time.sleep(0.5)
    assert metric(n, "notifd_bus_consumed_total", group="notifications_ws") is None
    assert metric(n, "notifications_ws_forwards_total", source="bus") is None
    st, _ = notify(n, "purchase", "u", purchase("o", "p", 1))
    assert st == 200
