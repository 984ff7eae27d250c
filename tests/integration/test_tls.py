"""TLS on the public listener (listen.tls) against real TLS clients: curl,
Python's ssl module (http.client, websockets, raw ssl sockets) and
Chromium (tests/browser/tls.test.mjs).

The test PKI is made here with the `cryptography` package: a root CA, an
intermediate CA and a server certificate for 127.0.0.1 and localhost; the
server's cert file holds the chain (server + intermediate), clients trust
the root only.

Covers: GET and POST with curl (ALPN http/1.1), keep-alive with several
requests on one connection, TLS 1.2 and 1.3 and `min_version: 1.3`, a
plain-HTTP request to the TLS port (plain 400, daemon alive), garbage and
broken handshakes, a client that stops mid-handshake (closed at
`handshake_timeout`), a body of several TLS records, close_notify on
close, websockets over TLS (subscribe, forwarded message, large frames,
bytes pipelined behind the upgrade request), config errors naming
file:line:column and OpenSSL's reason, and Chromium trusting the test
certificate by its SPKI hash (healthz, wss, and the web chat round trip).
"""
import asyncio
import base64
import datetime
import hashlib
import http.client as httpclient
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request

import pytest
import websockets
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conftest import NOTIFD, SOURCE, Notifd, checked_exits, http, plugin_yaml, run

STREAM_AB = "6b79c4fda3031c04"  # ComputeStreamID("Mr.A", "Mr.B")
ZERO_TIME = "0001-01-01T00:00:00Z"
PLUGINS = plugin_yaml("chat_ws") + plugin_yaml("notifications_ws")


# ---- test PKI ----------------------------------------------------------------

class Pki:
    """Files: ca (root, what clients trust), chain (server + intermediate),
    key (server key), other_key (a key that matches nothing); spki: the
    base64 SHA-256 of the server certificate's SubjectPublicKeyInfo."""


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject, key, issuer, issuer_key, ca, sans=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=2))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        b = b.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                          False), critical=True)
    else:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                            critical=False)
    return b.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    root_key, mid_key, srv_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root = _cert("notifd test root", root_key, "notifd test root", root_key, True)
    mid = _cert("notifd test intermediate", mid_key, "notifd test root", root_key, True)
    srv = _cert("localhost", srv_key, "notifd test intermediate", mid_key, False,
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    pem = serialization.Encoding.PEM
    p = Pki()
    p.ca, p.chain, p.key, p.other_key = (str(d / f) for f in
                                         ("ca.pem", "chain.pem", "key.pem", "other.pem"))
    with open(p.ca, "wb") as f:
        f.write(root.public_bytes(pem))
    with open(p.chain, "wb") as f:
        f.write(srv.public_bytes(pem) + mid.public_bytes(pem))
    for path, k in ((p.key, srv_key), (p.other_key, ec.generate_private_key(ec.SECP256R1()))):
        with open(path, "wb") as f:
            f.write(k.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    spki = srv.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    p.spki = base64.b64encode(hashlib.sha256(spki).digest()).decode()
    return p


def client_ctx(pki, **versions):
    ctx = ssl.create_default_context(cafile=pki.ca)
    for k, v in versions.items():
        setattr(ctx, k, v)
    return ctx


# ---- notifd with listen.tls ------------------------------------------------

class TlsNotifd(Notifd):
    """conftest's Notifd with `listen.tls`; healthy = the admin port (plain)
    answers, which it does only once the TLS listener is up too."""

    def __init__(self, tmp_path, pki, plugins_yaml, extra_yaml="", tls_yaml=""):
        super().__init__(tmp_path, plugins_yaml, "auth: {mode: none}\n" + extra_yaml)
        self.ctx = client_ctx(pki)
        with open(self.config_path) as f:
            text = f.read()
        plain = f"listen: {{address: 127.0.0.1, port: {self.port}}}"
        tls = (f"listen: {{address: 127.0.0.1, port: {self.port}, "
               f"tls: {{cert: {pki.chain}, key: {pki.key}{tls_yaml}}}}}")
        with open(self.config_path, "w") as f:
            f.write(text.replace(plain, tls))

    @property
    def url(self):
        return f"https://127.0.0.1:{self.port}"

    @property
    def ws_url(self):
        return f"wss://127.0.0.1:{self.port}"

    def healthy(self):
        return http("GET", f"http://127.0.0.1:{self.admin_port}/healthz", timeout=1)[0] == 200

    def https(self, method, path, body=None, headers=None, timeout=10):
        """(status, body bytes) over TLS; HTTP errors are answers too."""
        data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers=dict(headers or {}, **(
                                         {"Content-Type": "application/json"} if data else {})))
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=self.ctx) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def alive(self):
        return self.https("GET", "/healthz")[0] == 200

    def tls_socket(self, ctx=None, timeout=10):
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        return (ctx or self.ctx).wrap_socket(raw, server_hostname="127.0.0.1")


@pytest.fixture
def start(tmp_path, pki):
    started = []

    def make(plugins_yaml=PLUGINS, extra_yaml="", tls_yaml=""):
        n = TlsNotifd(tmp_path, pki, plugins_yaml, extra_yaml, tls_yaml)
        started.append(n)
        return n.start()

    yield from checked_exits(make)


def message(i, content, sender="Mr.A", receiver="Mr.B", stream=STREAM_AB):
    return {"message_id": f"message_id_{i}", "content": content, "created_at": ZERO_TIME,
            "stream_id": stream, "sender_id": sender, "receiver_id": receiver}


def chat_sub(n, sender="Mr.A", receiver="Mr.B"):
    return (f"{n.ws_url}/chat/subscribe-websocket?stream_id={STREAM_AB}"
            f"&sender_id={sender}&receiver_id={receiver}")


def read_response(s):
    """One HTTP/1.1 answer with a Content-Length from socket-like s:
    (status, headers text, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(rest) < length:
        chunk = s.recv(65536)
        assert chunk
        rest += chunk
    return int(head.split(b" ")[1]), head.decode(), rest[:length]


def closed_by_peer(s, timeout):
    """True once the peer closed s (EOF or reset) within `timeout` seconds."""
    s.settimeout(timeout)
    try:
        while s.recv(4096):
            pass
        return True
    except (ConnectionResetError, ssl.SSLError):
        return True
    except socket.timeout:
        return False


def client_hello():
    """The first flight of a real TLS client, from an in-memory SSLObject."""
    ctx = ssl.create_default_context()
    out = ssl.MemoryBIO()
    obj = ctx.wrap_bio(ssl.MemoryBIO(), out, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return out.read()


# ---- plain HTTP clients ------------------------------------------------------

def test_curl_get_post_and_alpn(start, pki):
    n = start()
    r = subprocess.run(["curl", "-sS", "-v", "--cacert", pki.ca, f"{n.url}/healthz"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"status": "ok"}
    assert "ALPN: server accepted http/1.1" in r.stderr or \
        "ALPN, server accepted to use http/1.1" in r.stderr, r.stderr
    # also by name (the certificate has DNS:localhost)
    r = subprocess.run(["curl", "-sS", "--cacert", pki.ca, "-X", "POST",
                        "-H", "Content-Type: application/json", "--data-binary",
                        json.dumps(message(1, "hi")), "-w", "\n%{http_code}",
                        f"https://localhost:{n.port}/chat/forward-to-websocket"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    body, code = r.stdout.rsplit("\n", 1)
    assert code == "200" and json.loads(body) == {"delivered": 0, "stream_id": STREAM_AB}
    # a client that does not trust the certificate refuses it
    r = subprocess.run(["curl", "-sS", f"{n.url}/healthz"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 60, r.stderr  # peer certificate cannot be authenticated
    assert n.alive()


def test_keepalive_several_requests_on_one_connection(start):
    n = start()
    conn = httpclient.HTTPSConnection("127.0.0.1", n.port, context=n.ctx, timeout=10)
    conn.connect()
    sock = conn.sock
    assert sock.version() == "TLSv1.3"
    assert sock.selected_alpn_protocol() is None  # http.client offers none
    for i in range(5):
        conn.request("GET", "/healthz")
        r = conn.getresponse()
        assert r.status == 200 and json.loads(r.read()) == {"status": "ok"}
        conn.request("POST", "/chat/forward-to-websocket", json.dumps(message(i, f"m{i}")),
                     {"Content-Type": "application/json"})
        r = conn.getresponse()
        assert r.status == 200, r.read()
        r.read()
        assert conn.sock is sock  # same TLS connection throughout
    conn.close()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls12_and_tls13(start, pki, version):
    n = start()
    with n.tls_socket(client_ctx(pki, minimum_version=version, maximum_version=version)) as s:
        assert s.version() == version.name.replace("_", ".")  # TLSv1_2 -> TLSv1.2
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        st, head, body = read_response(s)
        assert st == 200 and json.loads(body) == {"status": "ok"}
        # after `Connection: close` the server ends with close_notify: a
        # clean TLS EOF (b""), not a bare TCP close (SSLEOFError)
        assert s.recv(100) == b""


def test_min_version_13_refuses_tls12(start, pki):
    n = start(tls_yaml=", min_version: 1.3")
    with pytest.raises(ssl.SSLError):
        with n.tls_socket(client_ctx(pki, maximum_version=ssl.TLSVersion.TLSv1_2)):
            pass
    with n.tls_socket() as s:
        assert s.version() == "TLSv1.3"
    assert n.alive()


def test_body_of_many_records_and_chunked(start):
    n = start()
    content = "x" * 300_000  # ~19 TLS records each way

    async def scenario():
        async with websockets.connect(chat_sub(n), ssl=n.ctx, max_size=None,
                                      open_timeout=10) as ws:
            st, body = await asyncio.get_running_loop().run_in_executor(
                None, lambda: n.https("POST", "/chat/forward-to-websocket",
                                      message(1, content)))
            assert st == 200, body
            assert json.loads(body)["delivered"] == 1
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert frame["content"] == content

    run(scenario())
    # chunked upload of the same size
    conn = httpclient.HTTPSConnection("127.0.0.1", n.port, context=n.ctx, timeout=10)
    payload = json.dumps(message(2, content)).encode()
    conn.request("POST", "/chat/forward-to-websocket",
                 (payload[i:i + 7000] for i in range(0, len(payload), 7000)),
                 {"Content-Type": "application/json"}, encode_chunked=True)
    r = conn.getresponse()
    assert r.status == 200, r.read()
    conn.close()


def test_large_answers_to_a_slow_reader(start, tmp_path):
    """8 MiB static files to a client with a tiny receive buffer: the
    server's writes block (WANT_WRITE, write events) and resume, records
    come out whole and in order, and keep-alive goes on afterwards."""
    web = tmp_path / "web"
    web.mkdir()
    blobs = {name: os.urandom(8 << 20) for name in ("a.bin", "b.bin")}
    for name, data in blobs.items():
        (web / name).write_bytes(data)
    n = start(extra_yaml=f"http: {{static_dir: {web}}}\n")
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.settimeout(30)
    raw.connect(("127.0.0.1", n.port))
    with n.ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
        # both requests at once: the second answer queues behind the first
        s.sendall(b"GET /a.bin HTTP/1.1\r\nHost: x\r\n\r\nGET /b.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        for name in ("a.bin", "b.bin"):
            st, _, body = read_response(s)
            assert st == 200 and hashlib.sha256(body).digest() == \
                hashlib.sha256(blobs[name]).digest(), name
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(s)[0] == 200


# ---- misbehaving clients -----------------------------------------------------

def test_plain_http_to_tls_port_gets_a_plain_400(start):
    n = start()
    st, body, _ = http("GET", f"http://127.0.0.1:{n.port}/healthz")
    assert st == 400
    assert json.loads(body) == {"error": "this port speaks TLS: use https://"}
    r = subprocess.run(["curl", "-sS", f"http://127.0.0.1:{n.port}/healthz"],
                       capture_output=True, text=True, timeout=30)
    assert "speaks TLS" in r.stdout
    assert n.alive()


def test_garbage_and_broken_handshakes_do_not_hurt(start, pki):
    n = start()
    hello = client_hello()
    junk = [os.urandom(3000),                      # noise
            b"\x16\x03\x01\x00\x10" + os.urandom(16),  # a record of nonsense
            b"\x16\x03\x01\xff\xff" + os.urandom(500),  # a record longer than allowed
            hello[:len(hello) // 2],               # half a ClientHello, then close
            hello + os.urandom(2000),              # hello, then noise
            b"\x00" * 100,
            b"\r\n\r\nGET / HTTP/1.1\r\n\r\n"]      # not a method first: TLS garbage
    for data in junk:
        with socket.create_connection(("127.0.0.1", n.port), timeout=10) as s:
            s.sendall(data)
            if data is not junk[3]:
                assert closed_by_peer(s, 10), data[:20]
    # a client that rejects our certificate (no CA) aborts the handshake
    with pytest.raises(ssl.SSLCertVerificationError):
        n.tls_socket(ssl.create_default_context())
    # a connection reset in the middle of a request
    s = n.tls_socket()
    s.sendall(b"POST /chat/forward-to-websocket HTTP/1.1\r\nHost: x\r\n"
              b"Content-Length: 1000\r\n\r\n{\"a\":")
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()
    assert n.alive()
    assert n.proc.poll() is None


def test_stalled_handshake_closed_at_handshake_timeout(start):
    n = start(tls_yaml=", handshake_timeout: 1s")
    hello = client_hello()
    silent = socket.create_connection(("127.0.0.1", n.port), timeout=10)
    partial = socket.create_connection(("127.0.0.1", n.port), timeout=10)
    partial.sendall(hello[:20])
    t0 = time.monotonic()
    assert closed_by_peer(silent, 10) and closed_by_peer(partial, 10)
    assert 0.5 < time.monotonic() - t0 < 9
    silent.close()
    partial.close()
    # a connection that finished its handshake is under the keep-alive timer
    with n.tls_socket() as s:
        s.settimeout(1.5)
        with pytest.raises(socket.timeout):
            s.recv(10)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(s)[0] == 200


# ---- websockets over TLS -----------------------------------------------------

def test_websockets_over_tls(start):
    n = start()

    async def scenario():
        async with websockets.connect(chat_sub(n), ssl=n.ctx, open_timeout=10) as a, \
                websockets.connect(chat_sub(n, "Mr.B", "Mr.A"), ssl=n.ctx,
                                   open_timeout=10) as b, \
                websockets.connect(f"{n.ws_url}/notifications/subscribe?user_id=Mr.B",
                                   ssl=n.ctx, open_timeout=10) as note:
            loop = asyncio.get_running_loop()
            for i in range(3):
                msg = message(i, f"hello {i}")
                st, body = await loop.run_in_executor(
                    None, lambda: n.https("POST", "/chat/forward-to-websocket", msg))
                assert st == 200 and json.loads(body)["delivered"] == 2, body
                assert json.loads(await asyncio.wait_for(a.recv(), 5)) == msg
                assert json.loads(await asyncio.wait_for(b.recv(), 5)) == msg
            st, body = await loop.run_in_executor(
                None, lambda: n.https("POST", "/notifications/chat?user_id=Mr.B", message(9, "n")))
            assert st == 200, body
            env = json.loads(await asyncio.wait_for(note.recv(), 5))
            assert env["notification_type"] == "chat_notification"
            pong = await a.ping()
            await asyncio.wait_for(pong, 5)
        # every socket closed with the close handshake
        assert a.close_code == 1000 and b.close_code == 1000

    run(scenario())
    assert "connection error" not in n.read_log()


def _ws_frame(opcode, payload=b""):
    mask = os.urandom(4)
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + \
        bytes(c ^ mask[i % 4] for i, c in enumerate(payload))


def test_upgrade_pipelined_behind_a_request_with_a_frame(start):
    """GET, websocket upgrade and a ping frame in one TLS write: the bytes
    behind the upgrade request reach the websocket (hand-over of the
    decrypted input), the answers come in order, and the close handshake
    ends with close_notify."""
    n = start()
    key = base64.b64encode(os.urandom(16)).decode()
    with n.tls_socket() as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" +
                  (f"GET /chat/subscribe-websocket?stream_id={STREAM_AB}&sender_id=Mr.A"
                   f"&receiver_id=Mr.B HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                   f"Sec-WebSocket-Version: 13\r\n\r\n").encode() +
                  _ws_frame(0x9, b"tls!"))
        data = b""
        while data.count(b"\r\n\r\n") < 2 or not data.endswith(b"tls!"):
            chunk = s.recv(4096)
            assert chunk, data
            data += chunk
        assert data.startswith(b"HTTP/1.1 200 ")
        i = data.index(b"HTTP/1.1 101 ")
        ws = data[data.index(b"\r\n\r\n", i) + 4:]
        assert ws == b"\x8a\x04tls!"  # the pong
        s.sendall(_ws_frame(0x8, b"\x03\xe8"))
        rest = b""
        while True:
            chunk = s.recv(4096)  # b"" = close_notify; a bare FIN would raise
            if not chunk:
                break
            rest += chunk
        assert rest == b"\x88\x02\x03\xe8"
    assert n.alive()


def test_websocket_open_at_shutdown_gets_1001_and_close_notify(start):
    n = start()
    key = base64.b64encode(os.urandom(16)).decode()
    s = n.tls_socket()
    s.sendall((f"GET /notifications/subscribe?user_id=u1 HTTP/1.1\r\nHost: x\r\n"
               f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(4096)
    assert data.startswith(b"HTTP/1.1 101 ")
    n.proc.send_signal(signal.SIGTERM)
    frame = data.partition(b"\r\n\r\n")[2]
    while len(frame) < 4:
        frame += s.recv(4096)
    assert frame[0] == 0x88 and frame[2:4] == b"\x03\xe9"  # close 1001 (going away)
    s.sendall(_ws_frame(0x8, b"\x03\xe9"))
    while s.recv(4096):  # b"" = close_notify
        pass
    s.close()
    assert n.proc.wait(timeout=15) == 0


# ---- configuration -----------------------------------------------------------

def check(tmp_path, tls_text):
    path = tmp_path / "check.yaml"
    path.write_text("listen:\n  port: 0\n  tls:\n" + tls_text)
    r = subprocess.run([NOTIFD, "--check", "-c", str(path)], capture_output=True, text=True,
                       timeout=30)
    return r.returncode, r.stdout + r.stderr, str(path)


def test_config_errors_name_the_key_and_the_reason(tmp_path, pki):
    rc, out, path = check(tmp_path, f"    cert: {pki.chain}\n    key: {tmp_path}/nope.pem\n")
    assert rc == 1
    assert f"{path}:5:10: key 'listen.tls.key': cannot use private key '{tmp_path}/nope.pem': " \
        "No such file or directory" in out, out
    rc, out, path = check(tmp_path, f"    cert: {pki.chain}\n    key: {pki.other_key}\n")
    assert rc == 1 and f"{path}:5:10: key 'listen.tls.key'" in out and \
        "key values mismatch" in out, out
    rc, out, path = check(tmp_path, f"    cert: {pki.key}\n    key: {pki.key}\n")
    assert rc == 1 and f"{path}:4:11: key 'listen.tls.cert'" in out and "no start line" in out, out
    # a key too small for security level 2
    small = rsa.generate_private_key(65537, 1024)
    cert = _cert("localhost", small, "localhost", small, False, [x509.DNSName("localhost")])
    (tmp_path / "small.pem").write_bytes(
        cert.public_bytes(serialization.Encoding.PEM) +
        small.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()))
    small_pem = tmp_path / "small.pem"
    rc, out, path = check(tmp_path, f"    cert: {small_pem}\n    key: {small_pem}\n")
    assert rc == 1 and f"{path}:4:11: key 'listen.tls.cert'" in out, out
    assert "ee key too small" in out, out
    rc, out, path = check(tmp_path, f"    cert: {pki.chain}\n")
    assert rc == 1 and f"{path}:4:5: key 'listen.tls': needs both cert and key" in out, out
    rc, out, path = check(tmp_path, f"    cert: {pki.chain}\n    key: {pki.key}\n"
                                    "    min_version: 1.1\n")
    assert rc == 1 and "expected one of 1.2|1.3, got '1.1'" in out, out
    rc, out, path = check(tmp_path, f"    cert: {pki.chain}\n    key: {pki.key}\n"
                                    "    ciphers: ALL\n")
    assert rc == 1 and "unknown key 'listen.tls.ciphers'" in out, out
    rc, out, _ = check(tmp_path, f"    cert: {pki.chain}\n    key: {pki.key}\n"
                                 "    min_version: 1.3\n    handshake_timeout: 5s\n")
    assert rc == 0, out


def test_start_fails_on_a_bad_key(tmp_path, pki):
    n = TlsNotifd(tmp_path, pki, PLUGINS)
    with open(n.config_path) as f:
        text = f.read()
    with open(n.config_path, "w") as f:
        f.write(text.replace(pki.key, pki.other_key))
    r = subprocess.run([NOTIFD, "-c", n.config_path], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "key 'listen.tls.key'" in r.stderr and "key values mismatch" in r.stderr, r.stderr


# ---- Chromium ----------------------------------------------------------------

def test_chromium_trusts_the_certificate_by_spki(tmp_path, pki):
    """tests/browser/tls.test.mjs: healthz over https, a wss round trip and
    the web chat client (all five roles but email) over TLS."""
    here = os.path.join(SOURCE, "tests", "browser")
    chromium = os.environ.get("NOTIFD_CHROMIUM", "/usr/bin/chromium")
    if not shutil.which("node"):
        pytest.skip("node not found (scripts/install-deps.sh test installs it)")
    if not os.access(chromium, os.X_OK):
        pytest.skip(f"{chromium} not found (Debian package chromium)")
    if not os.path.exists(os.path.join(here, "node_modules", "playwright-core", "package.json")):
        pytest.skip("tests/browser/node_modules missing (scripts/install-deps.sh test)")
    plugins = (PLUGINS + plugin_yaml("chat_persistence", sqlite_synchronous="normal")
               + plugin_yaml("chat_change_handler"))
    n = TlsNotifd(tmp_path, pki, plugins,
                  extra_yaml=f"http: {{static_dir: {os.path.join(SOURCE, 'web')}}}\n")
    n.start()
    try:
        artifacts = os.path.join(os.environ.get("NOTIFD_BUILD_ROOT", str(tmp_path)), "tests",
                                 "browser-artifacts-tls")
        r = subprocess.run(["node", os.path.join(here, "tls.test.mjs"), n.url, pki.spki,
                            artifacts], capture_output=True, text=True, timeout=180,
                           env=dict(os.environ, NOTIFD_CHROMIUM=chromium))
        print(r.stdout)
        assert r.returncode == 0, r.stdout + r.stderr + n.read_log()[-3000:]
    finally:
        rc = n.stop()
    log = n.read_log()
    assert rc == 0 and "ERROR: AddressSanitizer" not in log and "runtime error:" not in log, log
