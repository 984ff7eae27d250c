#!/usr/bin/env python3
"""One chat round trip against a running notifd with the shipped config
(auth.mode users, open registration): two users register and sign in, both
open the chat websocket of their conversation (token in ?token=), alice
POSTs /chat/messages and both sockets get it, bob answers the same way;
the web client's index.html is served.  Exits 0 on success.

Usage: chat_round_trip.py BASE_URL   (e.g. http://127.0.0.1:8080)
Used by install_tree.sh and deb_package.sh (installed daemons).
"""
import asyncio
import hashlib
import json
import sys
import urllib.error
import urllib.request

import websockets


def http(method, url, body=None, token=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def stream_id(a, b):
    lo, hi = sorted([a.encode(), b.encode()])
    return hashlib.sha256(lo + hi).hexdigest()[:16]


async def main(base):
    ws_base = "ws" + base[len("http"):]
    st, page = http("GET", base + "/")
    assert st == 200 and b"<html" in page.lower(), (st, page[:200])
    tokens = {}
    for u in ("alice", "bob"):
        st, body = http("POST", base + "/auth/register", {"user_id": u, "password": "correct horse"})
        assert st == 201, (st, body)
        st, body = http("POST", base + "/auth/login", {"user_id": u, "password": "correct horse"})
        assert st == 200, (st, body)
        tokens[u] = json.loads(body)["token"]
    sid = stream_id("alice", "bob")
    q = f"stream_id={sid}&sender_id=alice&receiver_id=bob"
    url = f"{ws_base}/chat/subscribe-websocket?{q}&token="
    async with websockets.connect(url + tokens["alice"], open_timeout=10) as wa, \
            websockets.connect(url + tokens["bob"], open_timeout=10) as wb:
        loop = asyncio.get_running_loop()
        for frm, to, text in (("alice", "bob", "hello bob"), ("bob", "alice", "hi alice")):
            msg = {"content": text, "stream_id": sid, "sender_id": frm, "receiver_id": to}
            st, body = await loop.run_in_executor(
                None, lambda: http("POST", base + "/chat/messages", msg, tokens[frm]))
            assert st == 201, (st, body)
            for ws in (wa, wb):
                frame = json.loads(await asyncio.wait_for(ws.recv(), 15))
                assert frame["content"] == text and frame["sender_id"] == frm, frame
    print("chat round trip: alice <-> bob over HTTP + websocket")


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(sys.argv[1].rstrip("/")), 60))
