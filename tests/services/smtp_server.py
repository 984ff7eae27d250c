#!/usr/bin/python3
"""A real SMTP server for tests: Debian's python3-aiosmtpd on a loopback port.

In a test (runs in a thread of the test process):

    srv = SmtpServer(port=0,                       # 0 = a free port
                     starttls=(cert, key),         # offer STARTTLS ...
                     require_starttls=True,        # ... and refuse mail without it
                     implicit_tls=(cert, key),     # or: SMTPS from the first byte
                     auth=("user", "secret"),      # require AUTH (only after TLS)
                     reject={"x@example.com": "550 5.1.1 No such user"})
    srv.start(); ...; srv.wait_for(1); srv.messages; srv.stop()

`make_cert(dir)` writes a self-signed certificate for 127.0.0.1/localhost
with the openssl command line tool and returns (cert_path, key_path).

From a shell (down-then-up scenarios, manual runs):

    smtp_server.py --port 2525 [--starttls CERT KEY] [--reject ADDR] --outdir DIR

writes each accepted message to DIR/<n>.eml and prints "ready <port>".
"""
import argparse
import warnings
import os
import socket
import ssl
import subprocess
import sys
import threading
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

# aiosmtpd 1.4 warns about its own use of a deprecated attribute.
warnings.filterwarnings("ignore", message=".*login_data is deprecated.*")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_cert(directory):
    cert = os.path.join(directory, "smtp-cert.pem")
    key = os.path.join(directory, "smtp-key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", key, "-out", cert],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


def _server_ctx(pair):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*pair)
    return ctx


class Received:
    """One accepted message."""

    def __init__(self, server, session, envelope):
        self.mail_from = envelope.mail_from
        self.rcpt_tos = list(envelope.rcpt_tos)
        self.data = envelope.original_content or envelope.content
        self.peer = session.peer
        transport = getattr(server, "transport", None)
        self.tls = session.ssl is not None or bool(
            transport and transport.get_extra_info("sslcontext"))
        self.authenticated = bool(session.authenticated)


class _Handler:
    def __init__(self, owner):
        self.owner = owner

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self.owner.lock:
            self.owner.rcpt_attempts.append(address)
            answer = self.owner.reject.get(address.lower())
        if answer:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.owner.lock:
            self.owner.messages.append(Received(server, session, envelope))
            self.owner.cond.notify_all()
        return "250 Message accepted for delivery"


class SmtpServer:
    def __init__(self, port=0, starttls=None, require_starttls=False, implicit_tls=None,
                 auth=None, reject=None):
        self.port = port or free_port()
        self.reject = {k.lower(): v for k, v in (reject or {}).items()}
        self.messages = []
        self.rcpt_attempts = []
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        kwargs = {}
        if starttls:
            kwargs["tls_context"] = _server_ctx(starttls)
            kwargs["require_starttls"] = require_starttls
        if auth:
            user, password = auth

            def authenticator(server, session, envelope, mechanism, data):
                ok = (isinstance(data, LoginPassword) and data.login.decode() == user
                      and data.password.decode() == password)
                return AuthResult(success=ok)

            kwargs["authenticator"] = authenticator
            kwargs["auth_required"] = True
            kwargs["auth_require_tls"] = True
        self.controller = Controller(
            _Handler(self), hostname="127.0.0.1", port=self.port,
            ssl_context=_server_ctx(implicit_tls) if implicit_tls else None,
            server_hostname="localhost", ready_timeout=10, **kwargs)

    def start(self):
        self.controller.start()
        return self

    def stop(self):
        try:
            self.controller.stop()
        except Exception:
            pass

    def wait_for(self, n, timeout=15):
        """Waits until at least n messages arrived; returns the list."""
        deadline = time.time() + timeout
        with self.cond:
            while len(self.messages) < n:
                left = deadline - time.time()
                if left <= 0:
                    break
                self.cond.wait(left)
            return list(self.messages)

    def peers(self):
        with self.lock:
            return {m.peer for m in self.messages}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"))
    ap.add_argument("--require-starttls", action="store_true")
    ap.add_argument("--reject", action="append", default=[], metavar="ADDR")
    ap.add_argument("--outdir", required=True)
    a = ap.parse_args()
    os.makedirs(a.outdir, exist_ok=True)
    srv = SmtpServer(a.port, starttls=tuple(a.starttls) if a.starttls else None,
                     require_starttls=a.require_starttls,
                     reject={r: "550 5.1.1 No such user" for r in a.reject}).start()
    print(f"ready {srv.port}", flush=True)
    written = 0
    try:
        while True:
            msgs = srv.wait_for(written + 1, timeout=1)
            for m in msgs[written:]:
                with open(os.path.join(a.outdir, f"{written:05d}.eml"), "wb") as f:
                    f.write(m.data)
                written += 1
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()


if __name__ == "__main__":
    sys.exit(main())
