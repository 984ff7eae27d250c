"""docs/openapi.yaml is true: the description notifd serves at
/openapi.json is a valid OpenAPI 3.1 document (openapi-spec-validator),
names every route the host and the first-party plugins register, and a
property-based fuzzer (schemathesis) run against a real single node finds
no 5xx and no answer outside the description (status code, content type,
body schema).

schemathesis and openapi-spec-validator come from PyPI, in the venv that
tests/services/pyenv.sh keeps; when it cannot be made (no network) the
suite reports SKIPPED with the reason.  The fuzzer's run is bounded
(max examples per operation, a time budget) and seeded, so it repeats.
"""
import json
import os
import re
import shutil
import subprocess
import time

import pytest
import websockets
import yaml

from conftest import BUILD, SOURCE, checked_exits, http, run, stream_id
from test_auth_users import SINGLE_NODE, SingleNode

INTERNAL_TOKEN = "openapi-internal-token-0123456789"
PASSWORD = "correct horse battery"
# The fuzzer's bounds: examples per operation, and the run's wall clock
# (NOTIFD_FUZZ_SECONDS, default 90: schemathesis 4 repeats its fuzzing and
# stateful phases until the budget is spent, so the run takes about that
# long).  Seeded: a failure repeats with the same inputs.
MAX_EXAMPLES = int(os.environ.get("NOTIFD_FUZZ_EXAMPLES", "25"))
SEED = int(os.environ.get("NOTIFD_FUZZ_SEED", "20261207"))
WS_PATHS = ["/chat/subscribe-websocket", "/notifications/subscribe"]


def venv_python():
    r = subprocess.run([os.path.join(SOURCE, "tests", "services", "pyenv.sh"), "setup"],
                       capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        pytest.skip(f"SKIPPED: no venv with schemathesis: {r.stderr.strip()}")
    return r.stdout.strip()


@pytest.fixture(scope="module")
def py():
    return venv_python()


def load_spec():
    with open(os.path.join(SOURCE, "docs", "openapi.yaml"), encoding="utf-8") as f:
        return yaml.safe_load(f)


class Node(SingleNode):
    """notifd with config/single-node.yaml (every role, auth.mode users,
    built-in accounts, open registration) and its documented environment,
    changed only where a fuzzer needs it: an internal token, a declared
    notification type to fuzz /notifications/{type} with, and rate limits
    high enough that the handlers, not the limiter, answer most
    requests."""

    def __init__(self, tmp_path, openapi=True):
        os.makedirs(tmp_path, exist_ok=True)
        super().__init__(tmp_path, NOTIFD_INTERNAL_TOKEN=INTERNAL_TOKEN,
                         NOTIFD_EMAIL_RETRY_ATTEMPTS="1")
        self.dir = tmp_path
        with open(SINGLE_NODE, encoding="utf-8") as f:
            cfg = yaml.safe_load(f)
        cfg["http"]["rate_limit"] = {"rate": 100000, "burst": 100000}
        cfg["http"]["openapi"] = openapi
        cfg["auth"]["login_limit"] = {"per_user": 0, "per_ip": 0}
        cfg["shutdown"] = {"deadline": "5s"}
        for p in cfg["plugins"]:
            if p["name"] == "notifications_ws":
                p["config"]["types"] = [{"name": "order-cancelled",
                                         "required": ["order_id", "reason"]}]
        self.config = str(tmp_path / "notifd.yaml")
        with open(self.config, "w", encoding="utf-8") as f:
            yaml.safe_dump(cfg, f)


@pytest.fixture
def node(tmp_path):
    def make(**kw):
        return Node(tmp_path / f"n{len(os.listdir(tmp_path))}", **kw).start()

    yield from checked_exits(make)


def token_for(n, user):
    st, body, _ = http("POST", n.url + "/auth/register", {"user_id": user, "password": PASSWORD})
    assert st == 201, body
    st, body, _ = http("POST", n.url + "/auth/login", {"user_id": user, "password": PASSWORD})
    assert st == 200, body
    return json.loads(body)["token"]


# ---- the document ----------------------------------------------------------

def test_served_document_is_the_built_one_and_valid(node, py):
    n = node()
    st, body, hdrs = http("GET", n.url + "/openapi.json")
    assert st == 200 and hdrs["Content-Type"].startswith("application/json")
    with open(os.path.join(BUILD, "docs", "openapi.json"), "rb") as f:
        assert body == f.read()
    assert json.loads(body) == load_spec()
    # The validator reads the served document, not the YAML.
    path = str(n.dir / "served.json")
    with open(path, "wb") as f:
        f.write(body)
    r = subprocess.run([py, "-c", "import json, sys\n"
                        "from openapi_spec_validator import validate\n"
                        "d = json.load(open(sys.argv[1]))\n"
                        "assert d['openapi'].startswith('3.1'), d['openapi']\n"
                        "validate(d)\n", path], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_openapi_can_be_turned_off(node):
    n = node(openapi=False)
    assert http("GET", n.url + "/openapi.json")[0] == 404
    assert http("GET", n.url + "/healthz")[0] == 200


# Registrations in the sources: api->http_route(..., "METHOD", "/path", ...),
# nd_router_add(router, "METHOD", "/path", ...) and the accounts' table.
ROUTE_RE = re.compile(r'"(GET|POST|PUT|DELETE|PATCH)",\s*"(/[^"]*)"')


def registered_routes():
    routes = set()
    for top in ("host", "plugins"):
        for d, _, files in os.walk(os.path.join(SOURCE, top)):
            if "example_hello" in d:
                continue  # the plugin authors' example, not a role
            for name in files:
                if name.endswith(".c") and not name.startswith("test_"):
                    with open(os.path.join(d, name), encoding="utf-8") as f:
                        routes.update(ROUTE_RE.findall(f.read()))
    return routes


def test_every_registered_route_is_described():
    spec = load_spec()
    described = {(m.upper(), p) for p, item in spec["paths"].items() for m in item
                 if m in ("get", "post", "put", "delete", "patch")}
    found = registered_routes()
    # notifications_ws builds its POST paths from a table of kinds (the
    # four built-ins, then config-declared types): /notifications/{type}.
    assert ("POST", "/notifications/{type}") in described
    for kind in ("chat", "purchase", "payment-reminder", "shipping-update"):
        assert ("POST", f"/notifications/{kind}") in described
    # /metrics is the admin listener's (described in info.description).
    missing = sorted(r for r in found if r not in described and r != ("GET", "/metrics"))
    assert not missing, f"routes registered in the sources but not in docs/openapi.yaml: {missing}"
    assert len(found) > 25, found
    for path in WS_PATHS:
        assert "101" in spec["paths"][path]["get"]["responses"]


# ---- websocket upgrades, as described ----------------------------------------

async def upgrade(url, **kw):
    try:
        async with websockets.connect(url, open_timeout=10, **kw):
            return 101
    except websockets.exceptions.InvalidStatusCode as e:
        return e.status_code


def test_websocket_routes_answer_as_described(node):
    n = node()
    tok = token_for(n, "ws-alice")
    base = n.url.replace("http:", "ws:")
    sid = stream_id("ws-alice", "ws-bob")
    chat = f"{base}/chat/subscribe-websocket?stream_id={sid}&sender_id=ws-alice&receiver_id=ws-bob"
    notif = f"{base}/notifications/subscribe?user_id=ws-alice"
    spec = load_spec()["paths"]
    got = {
        ("chat", "token"): run(upgrade(chat + f"&token={tok}")),
        ("chat", "bearer"): run(upgrade(chat, extra_headers={"Authorization": f"Bearer {tok}"})),
        ("chat", "none"): run(upgrade(chat)),
        ("chat", "other"): run(upgrade(f"{base}/chat/subscribe-websocket?stream_id={sid}"
                                       f"&sender_id=ws-carol&receiver_id=ws-bob&token={tok}")),
        ("notif", "token"): run(upgrade(notif + f"&token={tok}")),
        ("notif", "since"): run(upgrade(notif + f"&since=0&v=2&token={tok}")),
        ("notif", "bad-since"): run(upgrade(notif + f"&since=-1&token={tok}")),
        ("notif", "none"): run(upgrade(notif)),
    }
    assert got == {("chat", "token"): 101, ("chat", "bearer"): 101, ("chat", "none"): 401,
                   ("chat", "other"): 403, ("notif", "token"): 101, ("notif", "since"): 101,
                   ("notif", "bad-since"): 400, ("notif", "none"): 401}, got
    for (which, _), status in got.items():
        path = WS_PATHS[0] if which == "chat" else WS_PATHS[1]
        assert str(status) in spec[path]["get"]["responses"], (path, status)
    # A plain GET (no Upgrade) on a websocket path.
    st, body, _ = http("GET", f"{n.url}/notifications/subscribe?user_id=ws-alice",
                       headers={"Authorization": f"Bearer {tok}"})
    assert str(st) in spec[WS_PATHS[1]]["get"]["responses"], (st, body)


# ---- the fuzzer ----------------------------------------------------------------

def schemathesis_toml(user, peer, message_id):
    """The run's config: which answers are expected where the defaults
    would call them errors, and the parameters pinned to the signed-in
    user so that generated requests get past the 403 of "not your data"
    into the handlers (the coverage phase still varies the rest)."""
    sid = stream_id(user, peer)
    return f"""\
# 501 for a method notifd implements on no resource (TRACE, CONNECT, an
# unknown token), as RFC 9110 9.1 says; 405 with Allow for a method it
# implements elsewhere.
[checks.not_a_server_error]
expected-statuses = ["2xx", "3xx", "4xx", "501"]

# The email role's send routes answer 500 for a recipient without an
# address in its directory (README: as the Go service did), which any
# generated user id is: a documented answer there, not a server error.
[[operations]]
include-path-regex = "^/email/(chat|purchased)$"
checks.not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx", "500", "501"]

[[operations]]
include-path-regex = "^/(push/subscriptions|chat/conversations|notifications|notifications/read)$"
parameters = {{ "query.user_id" = "{user}" }}

[[operations]]
include-path-regex = "^/users/[{{]user_id[}}]/preferences$"
parameters = {{ "path.user_id" = "{user}" }}

[[operations]]
include-path = "/chat/streams/{{stream_id}}/messages"
parameters = {{ "path.stream_id" = "{sid}", "query.peer_id" = "{peer}", "query.user_id" = "{user}" }}

[[operations]]
include-path = "/chat/streams/{{stream_id}}/read"
parameters = {{ "path.stream_id" = "{sid}" }}

[[operations]]
include-path = "/chat/messages/{{message_id}}"
parameters = {{ "path.message_id" = "{message_id}" }}

# The config declares one type (Node): undeclared ones are only 404s.
[[operations]]
include-path = "/notifications/{{type}}"
parameters = {{ "path.type" = "order-cancelled" }}
"""


def test_fuzz_api_against_description(node, py, tmp_path):
    n = node()
    # The users of the description's examples (alice writes to bob).
    tok = token_for(n, "alice")
    token_for(n, "bob")
    # A conversation and an inbox entry, so reads have something to find.
    st, body, _ = http("POST", n.url + "/chat/messages",
                       {"content": "hello", "stream_id": stream_id("alice", "bob"),
                        "sender_id": "alice", "receiver_id": "bob"},
                       {"Authorization": f"Bearer {tok}"})
    assert st == 201, body
    message_id = json.loads(body)["message_id"]
    st, body, _ = http("POST", n.url + "/notifications/purchase?user_id=alice",
                       {"order_id": "o-1", "buyer_id": "b", "shop_owner_id": "s",
                        "product_name": "p", "amount": 1.5, "currency": "EUR",
                        "status": "paid"}, {"X-Notifd-Internal-Token": INTERNAL_TOKEN})
    assert st == 200, body

    work = tmp_path / "fuzz"
    work.mkdir()
    (work / "schemathesis.toml").write_text(schemathesis_toml("alice", "bob", message_id))
    budget = int(os.environ.get("NOTIFD_FUZZ_SECONDS", "90"))
    cmd = [os.path.join(os.path.dirname(py), "schemathesis"), "run", f"{n.url}/openapi.json",
           "--url", n.url,
           "-H", f"Authorization: Bearer {tok}",
           "-H", f"X-Notifd-Internal-Token: {INTERNAL_TOKEN}",
           "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                       "response_schema_conformance",
           "--phases", "examples,coverage,fuzzing,stateful",
           "--max-examples", str(MAX_EXAMPLES),
           "--seed", str(SEED),
           "--max-time", str(budget),
           "--workers", "2",
           "--request-timeout", "10",
           "--generation-database", "none",
           "--suppress-health-check", "all",
           "--continue-on-failure",
           "--no-color",
           "--report", "junit", "--report-dir", str(work / "report")]
    for p in WS_PATHS:
        cmd += ["--exclude-path", p]
    t0 = time.monotonic()
    r = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=budget + 240,
                       env=dict(os.environ, SCHEMATHESIS_HOOKS=""))
    took = time.monotonic() - t0
    out = r.stdout + r.stderr
    # Kept with the build's logs (pytest's tmp dirs are pruned).
    log = os.path.join(BUILD, "meson-logs", "openapi-schemathesis.log")
    os.makedirs(os.path.dirname(log), exist_ok=True)
    with open(log, "w") as f:
        f.write(out)
    print(out[-6000:])
    print(f"full output: {log}")
    # And the daemon's log of the run: warnings there (dead letters,
    # dropped events) are findings the HTTP answers do not show.
    shutil.copyfile(n.log_path, os.path.join(BUILD, "meson-logs", "openapi-notifd.log"))
    print(f"schemathesis ran {took:.1f} s, exit {r.returncode}")
    assert r.returncode == 0, out[-12000:]
    assert n.proc.poll() is None, n.read_log()[-4000:]
    # The daemon is still healthy and serving after the run.
    assert http("GET", n.url + "/healthz")[0] == 200
