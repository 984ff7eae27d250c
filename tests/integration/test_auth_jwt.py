"""External identity: notifd verifies tokens issued by an identity provider
(auth.jwt.*), with the provider's keys fetched from a JWKS document.

The provider here is real code, not a mock: keys made by python3-cryptography,
tokens signed by PyJWT (python3-jwt), and the JWKS served on 127.0.0.1 by
http.server in a thread.  Two token routes are exercised: chat_persistence's
POST /chat/persist (an HTTP route with a body) and notifications_ws's
websocket upgrade /notifications/subscribe?user_id=&token=.

Covers: valid RS256 / ES256 / EdDSA / HS256 accepted; forged signature,
expired, nbf in the future, iat in the future, alg none, HS256 signed with
the RSA public key PEM as the secret, an algorithm not configured, wrong
iss, wrong aud, lifetime over the maximum refused; a token with a new kid
waits for the JWKS refresh and succeeds on its first try; a rotated JWKS
(old key removed) refuses the old key after the refresh; the JWKS server
down gives a clear 401 and the daemon stays fine.
"""
import asyncio
import json
import os
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
import websockets
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from conftest import (SOURCE, checked_exits, free_port, http, plugin_yaml, run, stream_id,
                      wait_until)

ISSUER = "https://idp.example.test/"
AUDIENCE = "notifd-tests"
SECRET = "jwt-suite-hs-secret-0123456789abcdef"
PEER = "peer-b"


# The plugins' routes state their policies themselves (token), so the host
# mode only decides the defaults they do not use.
MODE = "mode: none, "


# ---- the identity provider ---------------------------------------------------

class Provider:
    """Signing keys and the JWKS document they publish."""

    def __init__(self):
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.ed = ed25519.Ed25519PrivateKey.generate()
        self.published = {"rsa-1": self.jwk(RSAAlgorithm, self.rsa, "rsa-1", "RS256"),
                          "ec-1": self.jwk(ECAlgorithm, self.ec, "ec-1", "ES256"),
                          "ed-1": self.jwk(OKPAlgorithm, self.ed, "ed-1", None)}
        self.keys = {"rsa-1": self.rsa, "ec-1": self.ec, "ed-1": self.ed}

    @staticmethod
    def jwk(alg_cls, key, kid, alg):
        d = json.loads(alg_cls.to_jwk(key.public_key()))
        d["kid"] = kid
        d["use"] = "sig"
        if alg:
            d["alg"] = alg
        return d

    def add_rsa(self, kid):
        k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.keys[kid] = k
        return k

    def document(self):
        return json.dumps({"keys": list(self.published.values())}).encode()

    def token(self, sub, alg="RS256", kid="rsa-1", key=None, headers=None, **claims):
        now = int(time.time())
        body = {"sub": sub, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300}
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        hdr = dict(headers or {})
        if kid:
            hdr["kid"] = kid
        if key is None:
            key = SECRET if alg.startswith("HS") else self.keys[kid]
        return jwt.encode(body, key, algorithm=alg, headers=hdr)


class JwksServer:
    """Serves the provider's current document at /jwks.json; counts GETs."""

    def __init__(self, provider):
        self.provider = provider
        self.fetches = 0
        self.delay = 0.0  # seconds before answering
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.fetches += 1
                time.sleep(outer.delay)
                body = outer.provider.document()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks.json"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def provider():
    return Provider()


@pytest.fixture
def jwks(provider):
    s = JwksServer(provider)
    yield s
    s.close()


@pytest.fixture
def notifd_factory(notifd_factory):
    yield from checked_exits(notifd_factory)


def start(factory, jwks_url, algorithms="[HS256, RS256, ES256, EdDSA]", extra_jwt=""):
    plugins = (plugin_yaml("chat_persistence", auth="token") +
               plugin_yaml("notifications_ws", auth="token"))
    yaml = (f"auth: {{{MODE}jwt_secret: {SECRET}, jwt: {{jwks_url: '{jwks_url}', "
            f"algorithms: {algorithms}, issuer: '{ISSUER}', audience: [other, {AUDIENCE}], "
            f"max_lifetime: 1h, leeway: 5s{extra_jwt}}}}}\n")
    return factory(plugins_yaml=plugins, extra_yaml=yaml)


# ---- the two token routes ------------------------------------------------------

def persist(n, token, user="user-a"):
    """POST /chat/persist as `user` with a Bearer token: (status, body)."""
    body = {"content": "hi", "stream_id": stream_id(user, PEER), "sender_id": user,
            "receiver_id": PEER, "client_message_id": str(uuid.uuid4())}
    st, data, _ = http("POST", n.url + "/chat/persist", body,
                       {"Authorization": f"Bearer {token}"})
    return st, data


def upgrade(n, token, user="user-a"):
    """Websocket upgrade on /notifications/subscribe: 101 or the refusal's status."""
    async def go():
        url = f"{n.ws_url}/notifications/subscribe?user_id={user}&token={token}"
        try:
            async with websockets.connect(url, open_timeout=15):
                return 101
        except websockets.exceptions.InvalidStatusCode as e:
            return e.status_code
    return run(go())


def assert_accepted(n, token, user="user-a"):
    st, data = persist(n, token, user)
    assert st == 201, (st, data)
    assert upgrade(n, token, user) == 101


def assert_refused(n, token, why, user="user-a"):
    st, data = persist(n, token, user)
    assert st == 401, (st, data)
    assert why in json.loads(data)["error"], data
    assert upgrade(n, token, user) == 401


# ---- tests -------------------------------------------------------------------------

def test_valid_tokens_of_each_algorithm_are_accepted(notifd_factory, provider, jwks):
    n = start(notifd_factory, jwks.url)
    for alg, kid in (("RS256", "rsa-1"), ("ES256", "ec-1"), ("EdDSA", "ed-1"), ("HS256", None)):
        assert_accepted(n, provider.token("user-a", alg=alg, kid=kid))
    # Without a kid the public keys that fit the algorithm are tried.
    assert_accepted(n, provider.token("user-a", kid=None, key=provider.rsa))
    # The subject is the user: another user's valid token does not open
    # user-a's socket (403: authenticated, not allowed).
    assert upgrade(n, provider.token("user-z"), "user-a") == 403


def test_bad_tokens_are_refused(notifd_factory, provider, jwks):
    n = start(notifd_factory, jwks.url)
    now = int(time.time())
    good = provider.token("user-a")
    head, payload, sig = good.split(".")
    forged_sig = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
    assert_refused(n, f"{head}.{payload}.{forged_sig}", "bad token signature")
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert_refused(n, provider.token("user-a", key=other_key), "bad token signature")
    assert_refused(n, provider.token("user-a", iat=now - 400, exp=now - 100), "token expired")
    assert_refused(n, provider.token("user-a", nbf=now + 120), "not valid yet")
    assert_refused(n, provider.token("user-a", iat=now + 120, exp=now + 400), "issued in the future")
    assert_refused(n, provider.token("user-a", iss="https://evil.example/"), "issuer")
    assert_refused(n, provider.token("user-a", aud="someone-else"), "audience")
    assert_refused(n, provider.token("user-a", aud=None), "audience")
    assert_refused(n, provider.token("user-a", iat=now, exp=now + 7200), "lifetime")
    assert_refused(n, provider.token("user-a", iat=None, exp=now + 7200), "lifetime")
    # alg none, with and without a signature part.
    unsigned = jwt.encode({"sub": "user-a", "iss": ISSUER, "aud": AUDIENCE, "exp": now + 300},
                          None, algorithm="none")
    assert_refused(n, unsigned + "c2ln", "alg none")
    st, _ = persist(n, unsigned)
    assert st == 401
    # HS256 keyed with the RSA public key's PEM (the classic alg confusion).
    pem = provider.rsa.public_key().public_bytes(serialization.Encoding.PEM,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
    hmac_alg = jwt.algorithms.HMACAlgorithm(jwt.algorithms.HMACAlgorithm.SHA256)
    signing_input = (jwt.utils.base64url_encode(json.dumps(
        {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}).encode()) + b"." +
        jwt.utils.base64url_encode(json.dumps(
            {"sub": "user-a", "iss": ISSUER, "aud": AUDIENCE, "exp": now + 300}).encode()))
    confused = signing_input + b"." + jwt.utils.base64url_encode(hmac_alg.sign(signing_input, pem))
    assert_refused(n, confused.decode(), "bad token signature")
    # An algorithm notifd knows but this config does not list.
    assert_refused(n, provider.token("user-a", alg="RS384"), "algorithm not allowed")
    # An EC key named for an RSA token: the key type must fit the algorithm.
    assert_refused(n, provider.token("user-a", alg="RS256", kid="ec-1", key=provider.rsa),
                   "does not fit")
    # A critical header extension.
    assert_refused(n, provider.token("user-a", headers={"crit": ["exp"]}), "critical")
    # Still healthy and still accepting good tokens.
    assert http("GET", n.url + "/healthz")[0] == 200
    assert_accepted(n, good)


def test_unknown_kid_waits_for_the_refresh_and_succeeds(notifd_factory, provider, jwks):
    n = start(notifd_factory, jwks.url)
    assert_accepted(n, provider.token("user-a"))
    before = jwks.fetches
    # A new key is published after notifd fetched the set; the very first
    # request signed with it waits for the refresh and succeeds.
    k = provider.add_rsa("rsa-new")
    provider.published["rsa-new"] = Provider.jwk(RSAAlgorithm, k, "rsa-new", "RS256")
    st, data = persist(n, provider.token("user-a", kid="rsa-new"))
    assert st == 201, data
    assert jwks.fetches == before + 1
    assert upgrade(n, provider.token("user-a", kid="rsa-new")) == 101
    # A websocket upgrade is the first to name another new key.
    k2 = provider.add_rsa("rsa-new-2")
    provider.published["rsa-new-2"] = Provider.jwk(RSAAlgorithm, k2, "rsa-new-2", "RS256")
    n2 = start(notifd_factory, jwks.url)
    assert upgrade(n2, provider.token("user-a", kid="rsa-new-2")) == 101
    # A kid nobody publishes: one (rate-limited) refresh, then a clear 401.
    assert_refused(n2, provider.token("user-a", kid="nobody", key=k), "unknown token key id")
    del provider.published["rsa-new"], provider.published["rsa-new-2"]


def test_rotated_jwks_refuses_the_removed_key(notifd_factory, provider, jwks):
    n = start(notifd_factory, jwks.url)
    old = provider.token("user-a", kid="rsa-1")
    assert_accepted(n, old)
    saved = dict(provider.published)
    try:
        k = provider.add_rsa("rsa-2")
        provider.published = {"rsa-2": Provider.jwk(RSAAlgorithm, k, "rsa-2", "RS256")}
        # The new kid triggers the refresh, which drops rsa-1.
        assert_accepted(n, provider.token("user-a", kid="rsa-2"))
        assert_refused(n, old, "unknown token key id")
    finally:
        provider.published = saved


def test_scheduled_refresh_picks_up_rotation(notifd_factory, provider, jwks):
    n = start(notifd_factory, jwks.url, extra_jwt=", jwks_refresh: 1s")
    old = provider.token("user-a", kid="ed-1", alg="EdDSA")
    assert_accepted(n, old)
    saved = dict(provider.published)
    try:
        del provider.published["ed-1"]
        seen = jwks.fetches
        deadline = time.time() + 10
        while jwks.fetches < seen + 2 and time.time() < deadline:
            time.sleep(0.05)
        assert jwks.fetches >= seen + 2, "no scheduled refresh"
        st, data = persist(n, old)
        assert st == 401, data
    finally:
        provider.published = saved


def test_stop_while_a_request_waits_for_keys(notifd_factory, provider, jwks):
    n = start(notifd_factory, jwks.url)
    assert_accepted(n, provider.token("user-a"))
    before = jwks.fetches
    jwks.delay = 3.0
    result = {}

    def client():
        try:
            result["status"] = persist(n, provider.token("user-a", kid="late", key=provider.rsa))[0]
        except OSError as e:  # the daemon closed the parked connection
            result["error"] = e

    t = threading.Thread(target=client)
    t.start()
    wait_until(lambda: jwks.fetches == before + 1, what="the unknown-kid refresh")
    assert n.stop() == 0  # parked request, waiter and fetch in flight all torn down
    t.join(10)
    assert not t.is_alive()
    assert result.get("status") in (None, 401, 503), result


def test_jwks_server_down(notifd_factory, provider):
    dead = f"http://127.0.0.1:{free_port()}/jwks.json"  # nothing listens there
    n = start(notifd_factory, dead)
    t0 = time.time()
    assert_refused(n, provider.token("user-a"), "signing keys are not available")
    assert time.time() - t0 < 10
    # HS tokens do not depend on the provider.
    assert_accepted(n, provider.token("user-a", alg="HS256", kid=None))
    assert http("GET", n.url + "/healthz")[0] == 200
    assert "JWKS fetch from" in n.read_log()


def test_config_errors_name_the_place(tmp_path):
    from conftest import NOTIFD
    import subprocess
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("auth:\n  jwt:\n    algorithms: [RS256, XS999, none]\n"
                   "    jwks_url: ftp://idp/jwks\n    leeway: -1s\nplugins: []\n")
    p = subprocess.run([NOTIFD, "--check", "-c", str(cfg)], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode != 0
    out = p.stdout + p.stderr
    assert "bad.yaml:3:" in out and "unknown algorithm 'XS999'" in out, out
    assert "'none' (unsigned tokens) is never accepted" in out, out
    assert "bad.yaml:4:" in out and "http:// or https://" in out, out
    assert "bad.yaml:5:" in out, out
    cfg.write_text("auth:\n  jwt:\n    algorithms: [ES256]\nplugins: []\n")
    p = subprocess.run([NOTIFD, "--check", "-c", str(cfg)], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode != 0 and "need auth.jwt.jwks_url" in p.stdout + p.stderr
