"""email plugin against a real SMTP server (Debian's python3-aiosmtpd on a
loopback port, in this process), with records injected through the operator
tool `notifd bus produce` on the embedded bus.

The default source is the notification event stream (`notification-events`,
docs/events.md); the tests produce events in its documented shape (value,
key = user_id, headers notifd-muted / notifd-quiet) themselves.

Covers: chat event -> exactly one email (subject, body, headers, MIME), each
built-in type and a config-declared type from events, muted / quiet events
skipped, the same event twice -> one mail, malformed events dead-lettered
with a reason, SMTP down -> retried then delivered, permanent 550 -> dead
letter without retry, STARTTLS + AUTH with certificate verification, SMTPS,
chat throttle, connection reuse, the legacy chat change topic and
notifications topic when configured (redelivery -> still one mail, also
after a restart), template and `types` errors caught by `notifd --check`,
and the Go HTTP endpoints.
"""
import email
import email.policy
import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from conftest import NOTIFD, SOURCE, checked_exits, free_port, http, metric, wait_until

sys.path.insert(0, os.path.join(SOURCE, "tests", "services"))
smtp_server = pytest.importorskip("smtp_server", reason="python3-aiosmtpd is not installed")
SmtpServer, make_cert = smtp_server.SmtpServer, smtp_server.make_cert

TOKEN = "email-test-internal-token"
AUTH = {"X-Notifd-Internal-Token": TOKEN}
TEMPLATES = os.path.join(SOURCE, "config", "templates")
CHAT_TOPIC = "chat-persistence-change"
EVENTS = "notification-events"
LEGACY_CHAT = f"chat_topic: {CHAT_TOPIC}"


def email_yaml(smtp_url, extra="", templates=TEMPLATES):
    return (
        "  - name: email\n"
        "    config:\n"
        f"      smtp_url: {smtp_url}\n"
        "      from_address: noreply@example.com\n"
        "      from_name: Notifd Tests\n"
        f"      templates_dir: {templates}\n"
        "      timeout: 5s\n"
        "      retry: {max_attempts: 60, initial_interval: 100ms, max_interval: 300ms, jitter: 0}\n"
        + "".join(f"      {line}\n" for line in extra.splitlines() if line.strip())
    )


HOST_YAML = f"auth: {{internal_token: {TOKEN}}}\n"


def start(notifd_factory, smtp_url, extra="", templates=TEMPLATES):
    starttls = "" if "starttls" in extra or smtp_url.startswith("smtps") else "starttls: none\n"
    return notifd_factory(plugins_yaml=email_yaml(smtp_url, starttls + extra, templates),
                          extra_yaml=HOST_YAML)


def put_user(n, user_id, addr, name):
    st, body, _ = http("PUT", f"{n.url}/email/users/{user_id}", {"email": addr, "name": name},
                       headers=AUTH)
    assert st == 200, body
    assert json.loads(body) == {"user_id": user_id, "email": addr, "name": name}


def produce(n, topic, value, key=None, headers=None):
    args = [NOTIFD, "bus", "produce", "-d", n.data_dir]
    if key is not None:
        args += ["-k", key]
    for name, v in (headers or {}).items():
        args += ["-H", f"{name}={v}"]
    args += [topic, value if isinstance(value, str) else json.dumps(value)]
    r = subprocess.run(args, capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr.decode()


def tail(n, topic, count=1, idle="8s"):
    r = subprocess.run([NOTIFD, "bus", "tail", "-d", n.data_dir, "-B", "-f", "-n", str(count), "-t", idle,
                        topic], capture_output=True, timeout=60)
    return [json.loads(line) for line in r.stdout.decode().splitlines() if line.strip()]


def chat_record(msg_id, content, sender, receiver, stream="stream-1", op="c"):
    doc = {"_id": msg_id, "content": content,
           "created_at": {"$date": {"$numberLong": "1700000000000"}},
           "stream_id": stream, "sender_id": sender, "receiver_id": receiver}
    return json.dumps({"before": None, "after": json.dumps(doc), "op": op, "ts_ms": 1700000000001})


def event(ev_id, user, notification_type, payload):
    """An event as notifications_ws publishes it (docs/events.md)."""
    return json.dumps({"id": ev_id, "user_id": user, "notification_type": notification_type,
                       "timestamp": "2026-12-07T21:00:00.123456789Z", "payload": payload},
                      separators=(",", ":"), ensure_ascii=False)


def produce_event(n, ev_id, user, notification_type, payload, headers=None):
    produce(n, EVENTS, event(ev_id, user, notification_type, payload), key=user, headers=headers)


def chat_payload(msg_id, content, sender, receiver, stream="stream-1"):
    return {"message_id": msg_id, "content": content, "created_at": "2023-11-14T22:13:20Z",
            "stream_id": stream, "sender_id": sender, "receiver_id": receiver}


def chat_event(n, ev_id, msg_id, content, sender, receiver, stream="stream-1", headers=None):
    produce_event(n, ev_id, receiver, "chat_notification",
                  chat_payload(msg_id, content, sender, receiver, stream), headers=headers)


def parse(msg):
    return email.message_from_bytes(msg.data, policy=email.policy.default)


@pytest.fixture
def notifd_factory(notifd_factory):
    """Every daemon stops with status 0 and no sanitizer report."""
    yield from checked_exits(notifd_factory)


@pytest.fixture
def smtp():
    servers = []

    def make(**kw):
        s = SmtpServer(**kw).start()
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


def test_chat_event_sends_one_email_with_headers_and_mime(notifd_factory, smtp):
    srv = smtp()
    n = start(notifd_factory, f"smtp://127.0.0.1:{srv.port}")
    put_user(n, "alice", "alice@example.com", "Zoë Sender")
    put_user(n, "bob", "bob@example.com", "Bob Receiver")
    content = "Hi Bob <b>&</b>\n.line starting with a dot\nünïcode ✓"
    chat_event(n, 1, "m-1", content, "alice", "bob")
    msgs = srv.wait_for(1)
    assert len(msgs) == 1
    m = msgs[0]
    assert m.mail_from == "noreply@example.com"
    assert m.rcpt_tos == ["bob@example.com"]
    assert b"\r\n" in m.data and b"\n" not in m.data.replace(b"\r\n", b"")
    p = parse(m)
    # The sender's name (not the receiver's), no double prefix; RFC 2047 decoded.
    assert p["Subject"] == "You have a new chat message from Zoë Sender"
    assert "=?UTF-8?" in m.data.decode().split("\r\n\r\n")[0]
    assert p["From"].addresses[0].display_name == "Notifd Tests"
    assert p["From"].addresses[0].addr_spec == "noreply@example.com"
    assert p["To"].addresses[0].display_name == "Bob Receiver"
    assert p["To"].addresses[0].addr_spec == "bob@example.com"
    assert p["Date"].datetime is not None
    assert re.fullmatch(r"<[0-9a-f]{32}@example\.com>", p["Message-ID"])
    assert p["MIME-Version"] == "1.0"
    assert p.get_content_type() == "multipart/alternative"
    text = p.get_body(preferencelist=("plain",))
    html = p.get_body(preferencelist=("html",))
    assert text.get_content_charset() == "utf-8"
    body = text.get_content()
    assert content.replace("\n", "\r\n") in body.replace("\r\n", "\n").replace("\n", "\r\n")
    assert ".line starting with a dot" in body  # dot-stuffing undone by the server
    assert "Hi Bob Receiver," in body
    assert "Hi Bob &lt;b&gt;&amp;&lt;/b&gt;" in html.get_content()
    wait_until(lambda: metric(n, "email_sent_total", type="chat") == 1, what="sent metric")
    time.sleep(0.5)
    assert len(srv.messages) == 1


def test_legacy_chat_topic_redelivered_record_still_one_email(notifd_factory, smtp):
    """chat_topic (Debezium change records) still mails when configured."""
    srv = smtp()
    n = start(notifd_factory, f"smtp://127.0.0.1:{srv.port}", LEGACY_CHAT)
    put_user(n, "u1", "u1@example.com", "User One")
    put_user(n, "u2", "u2@example.com", "User Two")
    rec = chat_record("dup-1", "hello once", "u1", "u2")
    produce(n, CHAT_TOPIC, rec, key="dup-1")
    assert len(srv.wait_for(1)) == 1
    produce(n, CHAT_TOPIC, rec, key="dup-1")  # the same record again (redelivery)
    wait_until(lambda: metric(n, "email_suppressed_total", type="chat", reason="duplicate") == 1,
               what="duplicate counted")
    # A restart does not forget it either (the dedupe store is durable).
    n.stop()
    n2 = notifd_factory(plugins_yaml=email_yaml(f"smtp://127.0.0.1:{srv.port}",
                                                "starttls: none\n" + LEGACY_CHAT),
                        extra_yaml=HOST_YAML, name="again", start=False)
    with open(n2.config_path) as f:  # reuse the first process's data directory
        cfg = f.read().replace(f"data_dir: {n2.data_dir}\n", f"data_dir: {n.data_dir}\n", 1)
    with open(n2.config_path, "w") as f:
        f.write(cfg)
    n2.data_dir = n.data_dir
    n2.start()
    produce(n2, CHAT_TOPIC, rec, key="dup-1")
    wait_until(lambda: metric(n2, "email_suppressed_total", type="chat", reason="duplicate") == 1,
               what="duplicate counted after restart")
    time.sleep(0.3)
    assert len(srv.messages) == 1


def test_smtp_down_then_up_is_retried_then_delivered(notifd_factory, smtp):
    port = free_port()  # nothing listens yet
    n = start(notifd_factory, f"smtp://127.0.0.1:{port}")
    put_user(n, "a", "a@example.com", "A")
    put_user(n, "b", "b@example.com", "B")
    chat_event(n, 1, "down-1", "are you there?", "a", "b")
    wait_until(lambda: metric(n, "email_failed_total", type="chat", reason="transport") >= 2,
               what="transport failures")
    assert metric(n, "notifd_bus_retried_total") >= 2
    srv = smtp(port=port)
    msgs = srv.wait_for(1)
    assert len(msgs) == 1 and msgs[0].rcpt_tos == ["b@example.com"]
    wait_until(lambda: metric(n, "email_sent_total", type="chat") == 1, what="sent metric")
    time.sleep(0.5)
    assert len(srv.messages) == 1
    assert metric(n, "notifd_bus_dead_lettered_total") == 0


def retry_budget_s(max_attempts, initial_s, max_s, multiplier=2.0):
    """Seconds from the first attempt to the last (no jitter): the host's
    backoff, initial * multiplier^(n-2) capped at max, for attempts 2..n."""
    total, wait = 0.0, initial_s
    for _ in range(2, max_attempts + 1):
        total += min(wait, max_s)
        wait *= multiplier
    return total


def yaml_duration_s(v):
    v = str(v)
    for suffix, mult in (("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)):
        if v.endswith(suffix) and v[:-len(suffix)].replace(".", "").isdigit():
            return float(v[:-len(suffix)]) * mult
    raise ValueError(v)


def shipped_email_retry(path):
    """(max_attempts, initial_s, max_s) of the email role in a shipped config;
    ${VAR:-default} scalars count as their default."""
    import yaml
    with open(os.path.join(SOURCE, path)) as f:
        text = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", f.read())
    cfg = yaml.safe_load(text)
    email_cfg = next(p for p in cfg["plugins"] if p["name"] == "email").get("config", {})
    r = email_cfg.get("retry") or {}
    return (int(r.get("max_attempts", 5)), yaml_duration_s(r.get("initial_interval", "100ms")),
            yaml_duration_s(r.get("max_interval", "30s")))


def test_single_node_retries_mail_at_least_as_long_as_distributed():
    """config/single-node.yaml rides out an SMTP outage at least as long as
    config/distributed/email.yaml (about 25 minutes), not ~1.5 s (the host's
    bus.retry default: 5 attempts from 100 ms)."""
    single = retry_budget_s(*shipped_email_retry("config/single-node.yaml"))
    dist = retry_budget_s(*shipped_email_retry("config/distributed/email.yaml"))
    assert dist >= 20 * 60, dist
    assert single >= dist, (single, dist)


def test_smtp_outage_longer_than_the_old_budget_loses_and_doubles_nothing(notifd_factory, smtp):
    """The SMTP server stops for 12 s - eight times the old single-node budget
    (5 attempts from 100 ms, ~1.5 s, then dead-lettered) - while ten mails are
    due.  The shipped policy (30 attempts, 1 s doubling to 1 min) scaled down
    tenfold in its first intervals (100 ms doubling to 2 s, so the test does
    not wait minutes) keeps retrying; once the server is back every mail
    arrives exactly once and nothing is dead-lettered."""
    srv = smtp()
    port = srv.port
    yaml_text = email_yaml(f"smtp://127.0.0.1:{port}",
                           "starttls: none\nchat_throttle: \"0\"\nchat_topic: " + CHAT_TOPIC)
    yaml_text = re.sub(r"retry: \{[^}]*\}",
                       "retry: {max_attempts: 30, initial_interval: 100ms, max_interval: 2s, "
                       "jitter: 0}", yaml_text)
    n = notifd_factory(plugins_yaml=yaml_text, extra_yaml=HOST_YAML)
    put_user(n, "a", "a@example.com", "A")
    for i in range(10):
        put_user(n, f"r{i}", f"r{i}@example.com", f"R{i}")
    produce(n, CHAT_TOPIC, chat_record("before", "before the outage", "a", "r0"), key="before")
    assert len(srv.wait_for(1)) == 1
    srv.stop()
    down_at = time.monotonic()
    for i in range(10):
        produce(n, CHAT_TOPIC, chat_record(f"out-{i}", f"during the outage #{i}#", "a", f"r{i}"),
                key=f"out-{i}")
    old_budget = retry_budget_s(5, 0.1, 30)
    assert old_budget < 2
    time.sleep(max(0.0, 12 - (time.monotonic() - down_at)))
    failures = metric(n, "email_failed_total", type="chat", reason="transport")
    # Each partition's first record has been tried more often than the old
    # policy's five attempts, and still nothing was given up.
    assert failures >= 6, failures
    assert metric(n, "notifd_bus_dead_lettered_total") == 0
    back = smtp(port=port)
    msgs = back.wait_for(10, timeout=30)
    time.sleep(2.5)  # a duplicate would come from a retry after success
    bodies = [parse(m).get_body(preferencelist=("plain",)).get_content() for m in back.messages]
    for i in range(10):
        hits = sum(f"during the outage #{i}#" in b for b in bodies)
        assert hits == 1, (i, hits, len(msgs))
    assert len(back.messages) == 10
    assert metric(n, "email_sent_total", type="chat") == 11
    assert metric(n, "notifd_bus_dead_lettered_total") == 0
    assert tail(n, CHAT_TOPIC + ".dlq", idle="1s") == []


def test_permanent_550_is_dead_lettered_without_retry(notifd_factory, smtp):
    srv = smtp(reject={"gone@example.com": "550 5.1.1 No such user"})
    n = start(notifd_factory, f"smtp://127.0.0.1:{srv.port}")
    put_user(n, "a", "a@example.com", "A")
    put_user(n, "gone", "gone@example.com", "Gone")
    chat_event(n, 1, "perm-1", "bounce me", "a", "gone")
    dlq = tail(n, EVENTS + ".dlq")
    assert len(dlq) == 1
    assert dlq[0]["key"] == "gone"
    assert dlq[0]["headers"]["notifd-error"] == "smtp_permanent_550"
    assert dlq[0]["headers"]["notifd-group"] == "email"
    assert metric(n, "email_failed_total", type="chat", reason="smtp_550") == 1
    time.sleep(1.0)  # a retry would have happened within 100-300 ms
    assert srv.rcpt_attempts == ["gone@example.com"]
    assert metric(n, "notifd_bus_retried_total") == 0
    assert srv.messages == []
    # The next record on the same partition is not held back.
    put_user(n, "ok", "ok@example.com", "Ok")
    produce(n, EVENTS, event(2, "ok", "chat_notification", chat_payload("perm-2", "fine", "a", "ok")),
            key="gone")
    assert len(srv.wait_for(1)) == 1


def test_unknown_recipient_is_skipped_by_default(notifd_factory, smtp):
    """No address on file = no mail, not a failure: counted as suppressed,
    acknowledged, nothing dead-lettered, nothing logged at warn; and with
    a chat throttle the rest of the conversation is throttled, not looked
    up again."""
    srv = smtp()
    n = start(notifd_factory, f"smtp://127.0.0.1:{srv.port}", "chat_throttle: 10m")
    chat_event(n, 1, "skip-1", "x", "a", "nobody")
    wait_until(lambda: metric(n, "email_suppressed_total", type="chat",
                              reason="unknown_recipient") == 1, what="skipped")
    chat_event(n, 2, "skip-2", "y", "a", "nobody")
    wait_until(lambda: metric(n, "email_suppressed_total", type="chat", reason="throttled") == 1,
               what="throttled")
    assert tail(n, EVENTS + ".dlq", idle="1s") == []
    assert metric(n, "email_failed_total") == 0
    assert metric(n, "notifd_bus_retried_total") == 0
    assert "level=warn comp=email" not in n.read_log()
    assert srv.messages == []


def test_unknown_recipient_is_dead_lettered_when_configured(notifd_factory, smtp):
    srv = smtp()
    n = start(notifd_factory, f"smtp://127.0.0.1:{srv.port}", "unknown_recipients: dead_letter")
    chat_event(n, 1, "nouser-1", "x", "a", "nobody")
    dlq = tail(n, EVENTS + ".dlq")
    assert len(dlq) == 1 and dlq[0]["headers"]["notifd-error"] == "unknown_recipient"
    assert metric(n, "email_failed_total", type="chat", reason="unknown_recipient") == 1
    assert metric(n, "notifd_bus_retried_total") == 0


def test_starttls_with_auth_and_verified_certificate(notifd_factory, smtp, tmp_path):
    cert, key = make_cert(str(tmp_path))
    srv = smtp(starttls=(cert, key), require_starttls=True, auth=("mailer", "s3cret"))
    n = start(notifd_factory, f"smtp://localhost:{srv.port}",
              f"starttls: required\nusername: mailer\npassword: s3cret\nca_file: {cert}")
    put_user(n, "a", "a@example.com", "A")
    put_user(n, "b", "b@example.com", "B")
    chat_event(n, 1, "tls-1", "secret hello", "a", "b")
    msgs = srv.wait_for(1)
    assert len(msgs) == 1
    assert msgs[0].tls and msgs[0].authenticated
    assert "secret hello" in parse(msgs[0]).get_body(preferencelist=("plain",)).get_content()


def test_starttls_required_refuses_a_server_without_it(notifd_factory, smtp):
    srv = smtp()  # plain only
    n = start(notifd_factory, f"smtp://127.0.0.1:{srv.port}", "starttls: required")
    put_user(n, "a", "a@example.com", "A")
    put_user(n, "b", "b@example.com", "B")
    chat_event(n, 1, "notls-1", "never in clear", "a", "b")
    wait_until(lambda: metric(n, "email_failed_total", type="chat") >= 2, what="failures")
    assert srv.messages == []


def test_smtps_implicit_tls_with_insecure_skip_verify(notifd_factory, smtp, tmp_path):
    cert, key = make_cert(str(tmp_path))
    srv = smtp(implicit_tls=(cert, key))
    n = start(notifd_factory, f"smtps://127.0.0.1:{srv.port}", "insecure_skip_verify: true")
    put_user(n, "a", "a@example.com", "A")
    put_user(n, "b", "b@example.com", "B")
    chat_event(n, 1, "smtps-1", "over tls", "a", "b")
    msgs = srv.wait_for(1)
    assert len(msgs) == 1 and msgs[0].tls


def test_legacy_notifications_topic_and_connection_reuse(notifd_factory, smtp):
    srv = smtp()
    n = start(notifd_factory, f"smtp://127.0.0.1:{srv.port}",
              "max_concurrent: 1\nnotifications_topic: notifications")
    put_user(n, "shop", "shop@example.com", "Shop Owner")
    produce(n, "notifications", {"type": "purchase", "user_id": "shop", "payload": {
        "order_id": "ORD-9", "buyer_id": "b", "shop_owner_id": "shop", "product_name": "Tea",
        "amount": 12.5, "currency": "EUR", "status": "confirmed",
        "purchased_at": "2024-05-06T07:08:09+02:00"}}, key="n-1")
    produce(n, "notifications", {"type": "shipping-update", "user_id": "shop", "payload": {
        "order_id": "ORD-9", "status": "shipped", "tracking_number": "TRK1"}}, key="n-2")
    produce(n, "notifications", {"type": "payment-reminder", "user_id": "shop", "payload": {
        "order_id": "ORD-9", "amount": 3, "currency": "EUR", "due_date": "2024-06-01T00:00:00Z",
        "days_overdue": 2, "message": "please pay"}}, key="n-3")
    produce(n, "notifications", {"type": "chat", "user_id": "shop", "payload": {}}, key="n-4")
    msgs = srv.wait_for(3)
    assert len(msgs) == 3
    subjects = sorted(parse(m)["Subject"] for m in msgs)
    assert subjects == ["New purchase order: Tea", "Payment reminder for order ORD-9",
                        "Shipping update for order ORD-9: shipped"]
    purchase = next(parse(m) for m in msgs if parse(m)["Subject"].startswith("New purchase"))
    assert purchase.get_content().replace("\r\n", "\n").rstrip("\n") == (
        "Order ID: ORD-9\nProduct: Tea\nAmount: EUR 12.50\nStatus: confirmed\n"
        "Purchased: 2024-05-06 07:08:09")
    # One SMTP connection carried all three mails.
    assert len(srv.peers()) == 1
    wait_until(lambda: metric(n, "email_suppressed_total", type="chat",
                              reason="unsupported_type") == 1, what="chat type ignored")


def test_chat_throttle_mails_first_message_of_a_conversation(notifd_factory, smtp):
    srv = smtp()
    n = start(notifd_factory, f"smtp://127.0.0.1:{srv.port}", "chat_throttle: 10m")
    put_user(n, "a", "a@example.com", "A")
    put_user(n, "b", "b@example.com", "B")
    chat_event(n, 1, "t-1", "first", "a", "b", stream="s-ab")
    chat_event(n, 2, "t-2", "second", "a", "b", stream="s-ab")
    chat_event(n, 3, "t-3", "other stream", "a", "b", stream="s-other")
    wait_until(lambda: metric(n, "email_suppressed_total", type="chat", reason="throttled") == 1,
               what="throttled")
    msgs = srv.wait_for(2)
    time.sleep(0.3)
    assert len(srv.messages) == 2
    bodies = [parse(m).get_body(preferencelist=("plain",)).get_content() for m in msgs]
    # Events are keyed by user: one partition, so the first one is first.
    assert sum("first" in b for b in bodies) == 1
    assert sum("second" in b for b in bodies) == 0
    assert sum("other stream" in b for b in bodies) == 1


@pytest.fixture
def ferretdb(tmp_path):
    """A MongoDB wire-protocol server (FerretDB v1, SQLite handler), started
    and stopped by tests/services/ferretdb.sh (which builds it on first use)."""
    script = os.path.join(SOURCE, "tests", "services", "ferretdb.sh")
    d = tmp_path / "ferretdb"
    d.mkdir()
    r = subprocess.run([script, "start", str(d)], capture_output=True, text=True, timeout=600)
    if r.returncode == 2:
        pytest.skip("SKIPPED: FerretDB cannot run here: " + r.stderr.strip()[-300:])
    assert r.returncode == 0, r.stderr
    try:
        yield r.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run([script, "stop", str(d)], capture_output=True, timeout=60)


def test_mongodb_directory(notifd_factory, smtp, ferretdb):
    srv = smtp()
    n = notifd_factory(plugins_yaml=email_yaml(f"smtp://127.0.0.1:{srv.port}", "starttls: none"),
                       extra_yaml=HOST_YAML + "backends:\n  mongodb:\n"
                       f"    uri: \"{ferretdb}\"\n    database: emailtest\n")
    put_user(n, "m-a", "ma@example.com", "Mongo Sender")
    put_user(n, "m-b", "old@example.com", "Old Name")
    put_user(n, "m-b", "mb@example.com", "Mongo Receiver")  # upsert replaces
    chat_event(n, 1, "mg-1", "via mongo", "m-a", "m-b")
    msgs = srv.wait_for(1)
    assert len(msgs) == 1 and msgs[0].rcpt_tos == ["mb@example.com"]
    p = parse(msgs[0])
    assert p["Subject"] == "You have a new chat message from Mongo Sender"
    assert p["To"].addresses[0].display_name == "Mongo Receiver"
    assert "directory=mongodb" in n.read_log()
    chat_event(n, 2, "mg-2", "x", "m-a", "nobody")
    wait_until(lambda: metric(n, "email_suppressed_total", reason="unknown_recipient") == 1,
               what="unknown recipient")


def test_check_reports_template_errors(tmp_path):
    tdir = tmp_path / "templates"
    shutil.copytree(TEMPLATES, tdir)
    (tdir / "chat.tmpl").write_text("Subject: Hi {{sender_name}}\n\nHello\n{{no_such_field}}\n")
    (tdir / "shipping-update.tmpl").unlink()
    cfg = tmp_path / "check.yaml"
    cfg.write_text(
        f"data_dir: {tmp_path / 'data'}\n"
        f"plugin_dirs: [{os.path.join(os.environ.get('NOTIFD_BUILD_ROOT', ''), 'plugins')}]\n"
        "plugins:\n"
        "  - name: email\n"
        "    config:\n"
        "      smtp_url: smtp://127.0.0.1:25\n"
        f"      templates_dir: {tdir}\n")
    r = subprocess.run([NOTIFD, "--check", "-c", str(cfg)], capture_output=True, timeout=30)
    out = (r.stdout + r.stderr).decode()
    assert r.returncode == 1, out
    assert f"{tdir}/chat.tmpl:4: unknown field {{{{no_such_field}}}}" in out, out
    assert f"{tdir}/shipping-update.tmpl: cannot open template" in out, out
    # The shipped templates pass.
    cfg.write_text(cfg.read_text().replace(str(tdir), TEMPLATES))
    r = subprocess.run([NOTIFD, "--check", "-c", str(cfg)], capture_output=True, timeout=30)
    assert r.returncode == 0, (r.stdout + r.stderr).decode()


def test_go_http_endpoints(notifd_factory, smtp):
    srv = smtp(reject={"user4@example.com": "550 5.1.1 No such user"})
    n = start(notifd_factory, f"smtp://127.0.0.1:{srv.port}")
    for uid, addr, name in [("user-1", "user1@example.com", "User One"),
                            ("user-2", "user2@example.com", "User Two"),
                            ("user-4", "user4@example.com", "User Four"),
                            ("shop-owner-2", "shopowner2@example.com", "Shop Owner Two")]:
        put_user(n, uid, addr, name)
    chat = {"content": "Test message content", "stream_id": "s", "sender_id": "user-1",
            "receiver_id": "user-2"}
    # Internal auth policy.
    st, _, _ = http("POST", n.url + "/email/chat", chat)
    assert st in (401, 403)
    # Contract 12 item 17: 201 echo; the subject names the sender (bug fixed).
    st, body, hdrs = http("POST", n.url + "/email/chat", chat, headers=AUTH)
    assert st == 201, body
    assert body == (b'{"message_id":"","content":"Test message content",'
                    b'"created_at":"0001-01-01T00:00:00Z","stream_id":"s","sender_id":"user-1",'
                    b'"receiver_id":"user-2"}')
    assert hdrs["Content-Type"].startswith("application/json")
    m = srv.wait_for(1)[0]
    assert m.rcpt_tos == ["user2@example.com"]
    assert parse(m)["Subject"] == "You have a new chat message from User One"
    # Items 18 and 19: send failure and unknown recipient are 500.
    st, body, _ = http("POST", n.url + "/email/chat", dict(chat, receiver_id="user-4"),
                       headers=AUTH)
    assert (st, json.loads(body)) == (500, {"error": "failed to send email"})
    st, body, _ = http("POST", n.url + "/email/chat", dict(chat, receiver_id="user-6"),
                       headers=AUTH)
    assert (st, json.loads(body)) == (500, {"error": "failed to send email"})
    # Validation: gin's messages.
    st, body, _ = http("POST", n.url + "/email/chat", {"content": "x", "stream_id": "s"},
                       headers=AUTH)
    assert st == 400
    assert json.loads(body)["error"] == (
        "Key: 'ChatMessage.ChatMetadata.SenderID' Error:Field validation for 'SenderID' failed "
        "on the 'required' tag\nKey: 'ChatMessage.ChatMetadata.ReceiverID' Error:Field "
        "validation for 'ReceiverID' failed on the 'required' tag")
    # Two fields of the wrong type: the first is reported, as Go does (the
    # second overwrote and leaked it; found by the API fuzzer under ASan).
    st, body, _ = http("POST", n.url + "/email/chat",
                       b'{"content": 1, "stream_id": [], "sender_id": "a", "receiver_id": "b"}',
                       headers=AUTH)
    assert (st, json.loads(body)) == (400, {"error": "json: cannot unmarshal number into Go "
                                            "struct field ChatMessage.content of type string"})
    # Item 20: purchase email to the shop owner with the Go body.
    purchase = {"order_id": "ORD-001", "buyer_id": "buyer-1", "shop_owner_id": "shop-owner-2",
                "product_name": "Premium Coffee", "amount": 15.99, "currency": "USD",
                "status": "confirmed", "purchased_at": "2024-05-06T07:08:09.25+02:00"}
    st, body, _ = http("POST", n.url + "/email/purchased", purchase, headers=AUTH)
    assert st == 201, body
    assert json.loads(body) == purchase
    assert b'"amount":15.99,' in body
    m = srv.wait_for(2)[1]
    p = parse(m)
    assert m.rcpt_tos == ["shopowner2@example.com"]
    assert p["Subject"] == "New purchase order: Premium Coffee"
    assert p.get_content().replace("\r\n", "\n").rstrip("\n") == (
        "Order ID: ORD-001\nProduct: Premium Coffee\nAmount: USD 15.99\nStatus: confirmed\n"
        "Purchased: 2024-05-06 07:08:09")
    # Item 22: unknown shop owner.
    st, body, _ = http("POST", n.url + "/email/purchased",
                       dict(purchase, shop_owner_id="shop-owner-nonexistent"), headers=AUTH)
    assert (st, json.loads(body)) == (500, {"error": "failed to send email"})
    st, body, _ = http("POST", n.url + "/email/purchased", dict(purchase, amount=0), headers=AUTH)
    assert st == 400 and b"PurchaseUpdate.Amount" in body
    # Directory route validation.
    st, _, _ = http("PUT", n.url + "/email/users/x", {"email": "no-at-sign"}, headers=AUTH)
    assert st == 400
    st, _, _ = http("PUT", n.url + "/email/users/x", {"email": "a@b.c\r\nBcc: e@f.g"},
                    headers=AUTH)
    assert st == 400
    assert metric(n, "email_sent_total", type="purchase") == 1
    assert metric(n, "email_failed_total", type="chat", reason="smtp_550") == 1
    assert metric(n, "email_failed_total", type="chat", reason="unknown_recipient") == 1




DECLARED = """\
  - order-cancelled
  - {name: gift-card, notification_type: gift_card_sent}
"""


def declared_templates(tmp_path):
    tdir = tmp_path / "templates"
    shutil.copytree(TEMPLATES, tdir)
    (tdir / "order-cancelled.tmpl").write_text(
        "# a config-declared type: any top-level payload field\n"
        "Subject: Order {{order_id}} was cancelled\n\n"
        "Hi {{recipient_name}} ({{recipient_email}}),\n"
        "reason: {{reason}}; refund: {{refund}}; items: {{items}}; restock: {{restock}}; "
        "note: [{{note}}]\n"
        "--- html ---\n<p>{{reason}}</p>\n")
    (tdir / "gift-card.tmpl").write_text("Subject: A gift card from {{from}}\n\n{{code}}\n")
    return str(tdir)


def test_events_mail_each_builtin_and_declared_type(notifd_factory, smtp, tmp_path):
    srv = smtp()
    n = start(notifd_factory, f"smtp://127.0.0.1:{srv.port}", "types:\n" + DECLARED,
              templates=declared_templates(tmp_path))
    put_user(n, "shop", "shop@example.com", "Shop Owner")
    put_user(n, "al", "al@example.com", "Al")
    produce_event(n, 11, "shop", "purchase_notification", {
        "order_id": "ORD-9", "buyer_id": "b", "shop_owner_id": "shop", "product_name": "Tea",
        "amount": 12.5, "currency": "EUR", "status": "confirmed",
        "purchased_at": "2024-05-06T07:08:09+02:00"})
    produce_event(n, 12, "shop", "shipping_update_notification", {
        "order_id": "ORD-9", "status": "shipped", "tracking_number": "TRK1"})
    produce_event(n, 13, "shop", "payment_reminder_notification", {
        "order_id": "ORD-9", "amount": 3, "currency": "EUR", "due_date": "2024-06-01T00:00:00Z",
        "days_overdue": 2, "message": "please pay"})
    chat_event(n, 14, "c-1", "hello shop", "al", "shop")
    produce_event(n, 15, "shop", "order_cancelled_notification", {
        "order_id": "ORD-9", "reason": "out of stock", "refund": 12.5, "items": [1, "x"],
        "restock": False, "note": None})
    produce_event(n, 16, "shop", "gift_card_sent", {"from": "Al", "code": 1234})
    produce_event(n, 17, "shop", "poll_notification", {"q": "?"})  # not ours: acked
    msgs = srv.wait_for(6)
    assert len(msgs) == 6 and all(m.rcpt_tos == ["shop@example.com"] for m in msgs)
    by_subject = {parse(m)["Subject"]: parse(m) for m in msgs}
    assert sorted(by_subject) == [
        "A gift card from Al", "New purchase order: Tea", "Order ORD-9 was cancelled",
        "Payment reminder for order ORD-9", "Shipping update for order ORD-9: shipped",
        "You have a new chat message from Al"]
    text = lambda p: p.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")  # noqa: E731
    assert text(by_subject["New purchase order: Tea"]).rstrip("\n") == (
        "Order ID: ORD-9\nProduct: Tea\nAmount: EUR 12.50\nStatus: confirmed\n"
        "Purchased: 2024-05-06 07:08:09")
    assert "hello shop" in text(by_subject["You have a new chat message from Al"])
    assert "Days overdue: 2" in text(by_subject["Payment reminder for order ORD-9"])
    cancelled = by_subject["Order ORD-9 was cancelled"]
    assert text(cancelled).rstrip("\n") == (
        "Hi Shop Owner (shop@example.com),\n"
        'reason: out of stock; refund: 12.5; items: [1,"x"]; restock: false; note: []')
    assert cancelled.get_body(preferencelist=("html",)).get_content().strip() == \
        "<p>out of stock</p>"
    assert text(by_subject["A gift card from Al"]).strip() == "1234"
    wait_until(lambda: metric(n, "email_sent_total", type="order-cancelled") == 1
               and metric(n, "email_sent_total", type="gift-card") == 1, what="declared metrics")
    wait_until(lambda: metric(n, "email_suppressed_total", type="other",
                              reason="unsupported_type") == 1, what="unknown type acked")
    assert metric(n, "email_failed_total") == 0
    assert "events_topic=notification-events chat_topic= notifications_topic=" in n.read_log()


def test_muted_and_quiet_events_are_not_mailed(notifd_factory, smtp):
    srv = smtp()
    n = start(notifd_factory, f"smtp://127.0.0.1:{srv.port}")
    put_user(n, "u", "u@example.com", "U")
    payload = {"order_id": "S-1", "status": "shipped"}
    produce_event(n, 1, "u", "shipping_update_notification", payload,
                  headers={"notifd-muted": "push,email", "notifd-delivered": "0"})
    produce_event(n, 2, "u", "shipping_update_notification", payload,
                  headers={"notifd-quiet": "1"})
    produce_event(n, 3, "u", "shipping_update_notification", dict(payload, order_id="S-3"),
                  headers={"notifd-muted": "push, webhook", "notifd-quiet": "0"})
    wait_until(lambda: metric(n, "email_suppressed_total", type="shipping-update",
                              reason="preferences") == 1
               and metric(n, "email_suppressed_total", type="shipping-update",
                          reason="quiet") == 1, what="muted and quiet counted")
    msgs = srv.wait_for(1)
    assert [parse(m)["Subject"] for m in msgs] == ["Shipping update for order S-3: shipped"]
    time.sleep(0.3)
    assert len(srv.messages) == 1
    assert metric(n, "notifd_bus_retried_total") == 0
    assert tail(n, EVENTS + ".dlq", idle="1s") == []


def test_the_same_event_twice_is_mailed_once(notifd_factory, smtp):
    """At-least-once events: the same (user_id, id) again, even with other
    bytes, is a duplicate; the same id for another user is not."""
    srv = smtp()
    n = start(notifd_factory, f"smtp://127.0.0.1:{srv.port}")
    for u in ("u1", "u2"):
        put_user(n, u, f"{u}@example.com", u)
    payload = {"order_id": "P-1", "status": "shipped"}
    produce_event(n, 7, "u1", "shipping_update_notification", payload)
    assert len(srv.wait_for(1)) == 1
    produce_event(n, 7, "u1", "shipping_update_notification", payload)  # replayed
    produce(n, EVENTS, event(7, "u1", "shipping_update_notification", payload), key="other-key")
    wait_until(lambda: metric(n, "email_suppressed_total", type="shipping-update",
                              reason="duplicate") == 2, what="duplicates counted")
    produce_event(n, 7, "u2", "shipping_update_notification", payload)
    produce_event(n, 8, "u1", "shipping_update_notification", payload)
    msgs = srv.wait_for(3)
    time.sleep(0.3)
    assert sorted(m.rcpt_tos[0] for m in srv.messages) == [
        "u1@example.com", "u1@example.com", "u2@example.com"]
    assert metric(n, "email_sent_total", type="shipping-update") == 3


def test_nul_in_a_payload_string_is_mailed_not_dead_lettered(notifd_factory, smtp):
    """"\u0000" is valid JSON (Go writes it for a NUL byte, and
    notifications_ws stores and pushes such a notification): the mail goes
    out with U+FFFD in its place.  Found by the API fuzzer
    (test_openapi.py): it was dead-lettered as "payload is not a JSON
    object"."""
    srv = smtp()
    n = start(notifd_factory, f"smtp://127.0.0.1:{srv.port}")
    put_user(n, "u", "u@example.com", "U")
    produce_event(n, 1, "u", "shipping_update_notification",
                  {"order_id": "N-\u0000-1", "status": "ship\u0000ped"})
    msgs = srv.wait_for(1)
    assert parse(msgs[0])["Subject"] == "Shipping update for order N-\ufffd-1: ship\ufffdped"
    assert tail(n, EVENTS + ".dlq", idle="1s") == []
    assert metric(n, "email_failed_total", type="other", reason="invalid_record") == 0


def test_nul_in_chat_content_of_a_change_record_is_mailed_whole(notifd_factory, smtp):
    """A change record whose content holds "\\u0000" (Go stores it): the
    whole content is mailed, each NUL as U+FFFD, not cut at the first."""
    srv = smtp()
    n = start(notifd_factory, f"smtp://127.0.0.1:{srv.port}", LEGACY_CHAT)
    put_user(n, "u1", "u1@example.com", "User One")
    put_user(n, "u2", "u2@example.com", "User Two")
    produce(n, CHAT_TOPIC, chat_record("nul-1", "before\x00after", "u1", "u2"), key="nul-1")
    body = parse(srv.wait_for(1)[0]).get_body(preferencelist=("plain",)).get_content()
    assert "before\ufffdafter" in body, body


def test_malformed_events_are_dead_lettered_with_a_reason(notifd_factory, smtp):
    srv = smtp()
    n = start(notifd_factory, f"smtp://127.0.0.1:{srv.port}")
    put_user(n, "u", "u@example.com", "U")
    good = {"id": 1, "user_id": "u", "notification_type": "shipping_update_notification",
            "timestamp": "t", "payload": {"order_id": "G-1", "status": "ok"}}
    # The reasons are plugins/common's pc_event (as webpush's), then email's own.
    bad = [
        ("not json", "value is not a JSON object"),
        ('["an", "array"]', "value is not a JSON object"),
        (dict(good, id="1"), "id must be a positive integer"),
        (dict(good, id=0), "id must be a positive integer"),
        ({k: v for k, v in good.items() if k != "user_id"},
         "user_id must be a string of 1..256 bytes without NUL"),
        (dict(good, notification_type=""),
         "notification_type must be a non-empty string without NUL"),
        (dict(good, user_id="a\tb"), "user_id must be one line of text without tabs"),
        (dict(good, payload="{}"), "payload is not a JSON object"),
    ]
    for i, (value, _) in enumerate(bad):
        produce(n, EVENTS, value if isinstance(value, str) else json.dumps(value), key="u",
                headers={"test-case": str(i)})
    dlq = tail(n, EVENTS + ".dlq", count=len(bad))
    assert len(dlq) == len(bad)
    got = {int(r["headers"]["test-case"]): r["headers"]["notifd-error"] for r in dlq}
    assert got == {i: reason for i, (_, reason) in enumerate(bad)}
    assert metric(n, "email_failed_total", type="other", reason="invalid_record") == len(bad)
    assert metric(n, "notifd_bus_retried_total") == 0
    produce(n, EVENTS, json.dumps(good), key="u")  # the partition goes on
    assert [parse(m)["Subject"] for m in srv.wait_for(1)] == ["Shipping update for order G-1: ok"]


def test_check_reports_declared_type_errors(tmp_path):
    tdir = declared_templates(tmp_path)
    os.unlink(os.path.join(tdir, "gift-card.tmpl"))
    with open(os.path.join(tdir, "order-cancelled.tmpl"), "a") as f:
        f.write("{{unclosed\n")
    cfg = tmp_path / "check.yaml"

    def check(types):
        cfg.write_text(
            f"data_dir: {tmp_path / 'data'}\n"
            f"plugin_dirs: [{os.path.join(os.environ.get('NOTIFD_BUILD_ROOT', ''), 'plugins')}]\n"
            "plugins:\n  - name: email\n    config:\n      smtp_url: smtp://127.0.0.1:25\n"
            f"      templates_dir: {tdir}\n      types:\n"
            + "".join(f"      {line}\n" for line in types.splitlines()))
        r = subprocess.run([NOTIFD, "--check", "-c", str(cfg)], capture_output=True, timeout=30)
        return r.returncode, (r.stdout + r.stderr).decode()

    rc, out = check(DECLARED)
    assert rc == 1, out
    assert f"{tdir}/order-cancelled.tmpl:8: unclosed '{{{{'" in out, out
    assert f"{tdir}/gift-card.tmpl: cannot open template" in out, out
    rc, out = check("  - purchase\n  - Bad_Name\n  - {name: ok-one, notification_type: "
                    "chat_notification}\n  - dup\n  - {name: dup2, notification_type: "
                    "dup_notification}\n")
    assert rc == 1, out
    # file:line:col of the entry, and its key path.
    assert (f"{cfg}:9:11: key 'plugins[0].config.types[0]': expected a type name "
            "[a-z0-9-]{1,48}, not a built-in type, got 'purchase'") in out, out
    assert f"{cfg}:10:11: key 'plugins[0].config.types[1]': " in out and "'Bad_Name'" in out, out
    assert (f"{cfg}:11:45: key 'plugins[0].config.types[2].notification_type': expected a "
            "notification_type [a-z0-9_.-]{1,64}, not a built-in one, got "
            "'chat_notification'") in out, out
    assert f"key 'plugins[0].config.types[4]': 'dup2' (dup_notification) is declared twice" \
        in out, out
    # Entries hold name and notification_type only (required: is
    # notifications_ws's); the shared templates pass.
    with open(os.path.join(tdir, "x.tmpl"), "w") as f:
        f.write("Subject: {{a}}\n\n{{b}}\n")
    rc, out = check("  - {name: x, required: [a]}\n")
    assert rc == 1 and "unknown key 'plugins[0].config.types[0].required'" in out, out
    rc, out = check("  - x\n  - {name: x2, notification_type: yz_happened}\n")
    assert rc == 1 and "x2.tmpl: cannot open template" in out, out
    shutil.copy(os.path.join(tdir, "x.tmpl"), os.path.join(tdir, "x2.tmpl"))
    rc, out = check("  - x\n  - {name: x2, notification_type: yz_happened}\n")
    assert rc == 0, out
