"""The access log (logging.access, on by default): one line per HTTP
request (method, path without the query, status, bytes, duration, the
authenticated user, the client address) and one per websocket open and
close (channel, key, user, duration, close code), in the configured
logfmt or JSON format; a token given as ?token= is never written;
`logging.access: false` silences them.
"""
import asyncio
import json
import re
import socket

import pytest
import websockets

from conftest import checked_exits, http, plugin_yaml, run, stream_id, wait_until

SECRET_MARK = "do-not-log-me"
AUTH = "auth: {mode: users, accounts: true, registration: open, internal_token: it-secret}\n"


@pytest.fixture
def node(notifd_factory):
    def make(logging):
        n = notifd_factory(plugin_yaml("chat_ws"), AUTH, start=False)
        with open(n.config_path) as f:
            text = f.read()
        with open(n.config_path, "w") as f:
            f.write(text.replace("logging: {level: info}", f"logging: {logging}"))
        return n.start()

    yield from checked_exits(make)


def logfmt(line):
    """key=value pairs of a logfmt line (values unquoted)."""
    out = {}
    for m in re.finditer(r'(\w+)=("((?:[^"\\]|\\.)*)"|\S*)', line):
        out[m.group(1)] = m.group(3) if m.group(3) is not None else m.group(2)
    return out


def access_lines(n, parse):
    lines = [l for l in n.read_log().splitlines() if "access" in l]
    recs = [parse(l) for l in lines]
    return [r for r in recs if r.get("comp") == "access"]


def register_and_login(n, user):
    st, _, _ = http("POST", n.url + "/auth/register", {"user_id": user, "password": "correct horse"})
    assert st == 201
    st, body, _ = http("POST", n.url + "/auth/login", {"user_id": user, "password": "correct horse"})
    assert st == 200
    return json.loads(body)["token"]


def traffic(n):
    """A 200 as a signed-in user, a 400 (bad JSON), a 404 with a query
    holding a token, a request line the server cannot read, and a
    websocket opened with ?token= and closed by the client with 1000."""
    token = register_and_login(n, "alice")
    st, body, _ = http("GET", n.url + "/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert st == 200, body
    st, _, _ = http("POST", n.url + "/auth/login", b"{not json")
    assert st == 400
    st, _, _ = http("GET", n.url + f"/nowhere?token={SECRET_MARK}&x=1")
    assert st == 404
    with socket.create_connection(("127.0.0.1", n.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\nHost: x\n\n")  # bare LF: 400 before any request exists
        assert s.recv(4096).startswith(b"HTTP/1.1 400")
    sid = stream_id("alice", "bob")

    async def ws():
        url = (f"{n.ws_url}/chat/subscribe-websocket?stream_id={sid}&sender_id=alice"
               f"&receiver_id=bob&token={token}")
        async with websockets.connect(url, open_timeout=10) as c:
            await asyncio.sleep(0.2)
            await c.close(code=1000)
    run(ws())
    return token, sid


def check(recs, token, sid, numeric):
    def num(v):
        return v if numeric else (int(v) if re.fullmatch(r"\d+", v) else float(v))

    reqs = [r for r in recs if r["msg"] == "request"]
    me = [r for r in reqs if r["path"] == "/auth/me"]
    assert len(me) == 1, reqs
    me = me[0]
    assert me["method"] == "GET" and num(me["status"]) == 200 and me["user"] == "alice"
    assert me["remote"] == "127.0.0.1" and num(me["bytes"]) > 0 and num(me["duration_ms"]) >= 0
    bad = [r for r in reqs if r["path"] == "/auth/login" and num(r["status"]) == 400]
    assert len(bad) == 1 and bad[0]["method"] == "POST" and "user" not in bad[0], reqs
    nowhere = [r for r in reqs if r["path"] == "/nowhere"]
    assert len(nowhere) == 1 and num(nowhere[0]["status"]) == 404, reqs
    broken = [r for r in reqs if r["method"] == "-"]
    assert len(broken) == 1 and num(broken[0]["status"]) == 400 and broken[0]["path"] == "-"
    opened = [r for r in recs if r["msg"] == "ws open"]
    assert len(opened) == 1, recs
    o = opened[0]
    assert o["channel"] == "/chat/subscribe-websocket" and o["key"] == sid
    assert o["user"] == "alice" and o["remote"] == "127.0.0.1"
    closed = [r for r in recs if r["msg"] == "ws close"]
    assert len(closed) == 1, recs
    c = closed[0]
    assert c["channel"] == "/chat/subscribe-websocket" and c["key"] == sid
    assert c["user"] == "alice" and num(c["code"]) == 1000 and num(c["duration_ms"]) >= 150


def test_logfmt_lines_for_requests_and_websockets(node):
    n = node("{level: info}")
    token, sid = traffic(n)
    wait_until(lambda: 'msg="ws close"' in n.read_log(), 10, "the ws close line")
    log = n.read_log()
    check(access_lines(n, logfmt), token, sid, numeric=False)
    assert token not in log and SECRET_MARK not in log and "token=" not in log
    # The same line shape as every other line.
    line = next(l for l in log.splitlines() if 'path=/auth/me' in l)
    assert re.match(r'ts=\S+Z level=info comp=access msg="request" method=GET path=/auth/me '
                    r'status=200 bytes=\d+ duration_ms=[\d.]+ user=alice remote=127\.0\.0\.1$',
                    line), line


def test_json_lines(node):
    n = node("{level: info, format: json}")
    token, sid = traffic(n)
    wait_until(lambda: '"ws close"' in n.read_log(), 10, "the ws close line")
    # A path with characters JSON must escape (the parser allows " and \\)
    # still gives a valid line.
    with socket.create_connection(("127.0.0.1", n.port), timeout=5) as s:
        s.sendall(b'GET /we"ird\\path{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
        assert s.recv(4096).startswith(b"HTTP/1.1 404")
    wait_until(lambda: "ird" in n.read_log(), 10, "the odd path's line")
    log = n.read_log()
    recs = [json.loads(l) for l in log.splitlines() if l.startswith("{")]
    assert any(r.get("path") == '/we"ird\\path{}' for r in recs), log[-2000:]
    recs = [r for r in recs if r.get("path", "").find("ird") < 0]
    check([r for r in recs if r.get("comp") == "access"], token, sid, numeric=True)
    me = next(r for r in recs if r.get("path") == "/auth/me")
    assert isinstance(me["status"], int) and isinstance(me["duration_ms"], float)
    assert token not in log and SECRET_MARK not in log and "token=" not in log


def test_access_false_silences_them(node):
    n = node("{level: info, access: false}")
    traffic(n)
    log = n.read_log()
    assert "comp=access" not in log and 'msg="request"' not in log, log[-2000:]
    assert "listening" in log  # the other lines are still there
