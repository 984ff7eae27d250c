"""Shared fixtures for black-box tests: run the built notifd with a YAML
config on free loopback ports and stop it by pid.

Environment (set by meson): NOTIFD_BUILD_ROOT, NOTIFD_SOURCE_ROOT.
"""
import asyncio
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest

BUILD = os.environ.get("NOTIFD_BUILD_ROOT", os.path.join(os.path.dirname(__file__), "../../build"))
SOURCE = os.environ.get("NOTIFD_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "../.."))
NOTIFD = os.path.join(BUILD, "host", "notifd")
PLUGIN_DIR = os.path.join(BUILD, "plugins")


def run(coro, timeout=60):
    """Runs a coroutine to completion, bounded in time."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def apost(url, body, headers=None):
    """POST from a worker thread so the loop keeps reading the sockets."""
    return await asyncio.get_running_loop().run_in_executor(
        None, lambda: http("POST", url, body, headers))


def plugin_yaml(name, **config):
    """One entry of the plugins: list, with its config map when given."""
    text = f"  - name: {name}\n"
    if config:
        text += "    config:\n" + "".join(f"      {k}: {v}\n" for k, v in config.items())
    return text


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def checked_exits(factory):
    """For a module's notifd_factory fixture (`yield from checked_exits(
    notifd_factory)`): every daemon that started must stop on SIGTERM with
    status 0 and no sanitizer report in its log."""
    started = []

    def make(*args, **kwargs):
        n = factory(*args, **kwargs)
        if n.proc is not None:
            started.append(n)
        return n

    yield make
    for n in started:
        rc = n.stop()
        log = n.read_log()
        assert not any(m in log for m in SANITIZER_MARKS), log[-4000:]
        assert rc == 0, f"notifd exited {rc}:\n{log[-4000:]}"


def wait_until(pred, timeout=15, what="condition"):
    """Polls pred() until it is true; AssertionError naming `what` after
    `timeout` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def metric(n, name, **labels):
    """Sum of the samples of `name` on n's /metrics whose labels include
    `labels` (0.0 when there are none)."""
    total = 0.0
    for line in n.metrics().splitlines():
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$', line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return total


def stream_id(a, b):
    """ComputeStreamID (contract 2.6): SHA-256 of the two user ids sorted
    by bytes and concatenated, first 16 hex characters."""
    lo, hi = sorted([a.encode(), b.encode()])
    return hashlib.sha256(lo + hi).hexdigest()[:16]


_ports_given = set()


def free_port():
    """A port free now and not handed out before in this session: the
    kernel may give the same ephemeral port to two quick binds, and a
    daemon's HTTP and admin ports then collide (seen once in CI)."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _ports_given:
            _ports_given.add(port)
            return port
    raise RuntimeError("no fresh free port after 100 tries")


def http(method, url, body=None, headers=None, timeout=10):
    """Returns (status, body_bytes, headers). Never raises on HTTP errors."""
    data = None
    hdrs = dict(headers or {})
    if body is not None:
        data = body if isinstance(body, (bytes, bytearray)) else json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def with_auth_mode(extra_yaml, mode="none"):
    """extra_yaml with auth.mode set to `mode` unless it names a mode: the
    suites written for the Go system's open behaviour run in seed
    compatibility (auth.mode none); suites about users name `mode: users`."""
    if re.search(r"\bmode:", extra_yaml):
        return extra_yaml
    flow = re.search(r"^auth: \{", extra_yaml, re.M)
    if flow:
        return extra_yaml[:flow.end()] + f"mode: {mode}, " + extra_yaml[flow.end():]
    block = re.search(r"^auth:\s*\n", extra_yaml, re.M)
    if block:
        return extra_yaml[:block.end()] + f"  mode: {mode}\n" + extra_yaml[block.end():]
    return f"auth: {{mode: {mode}}}\n" + extra_yaml


class Notifd:
    """One notifd process. `plugins_yaml` is the text under `plugins:`;
    auth.mode is none unless extra_yaml names one (with_auth_mode)."""

    def __init__(self, tmp_path, plugins_yaml="", extra_yaml="", env=None, name="notifd"):
        extra_yaml = with_auth_mode(extra_yaml)
        self.port = free_port()
        self.admin_port = free_port()
        self.dir = str(tmp_path)
        self.data_dir = os.path.join(self.dir, f"{name}-data")
        self.log_path = os.path.join(self.dir, f"{name}.log")
        self.config_path = os.path.join(self.dir, f"{name}.yaml")
        self.env = dict(os.environ, **(env or {}))
        with open(self.config_path, "w") as f:
            f.write(
                f"listen: {{address: 127.0.0.1, port: {self.port}}}\n"
                f"admin: {{address: 127.0.0.1, port: {self.admin_port}}}\n"
                f"data_dir: {self.data_dir}\n"
                f"plugin_dirs: [{PLUGIN_DIR}]\n"
                f"logging: {{level: info}}\n"
                f"shutdown: {{deadline: 5s}}\n"
                f"{extra_yaml}\n"
                f"plugins:\n{plugins_yaml if plugins_yaml else '  []'}\n"
            )
        self.proc = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self):
        return f"ws://127.0.0.1:{self.port}"

    def spawn(self):
        """Starts the process (a subclass may send its output elsewhere)."""
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([NOTIFD, "-c", self.config_path], stdout=self.log,
                                     stderr=subprocess.STDOUT, env=self.env)

    def start(self, timeout=15):
        self.spawn()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"notifd exited {self.proc.returncode}:\n{self.read_log()}")
            try:
                if self.healthy():
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("notifd did not become healthy:\n" + self.read_log())

    def healthy(self):
        return http("GET", self.url + "/healthz", timeout=1)[0] == 200

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def metrics(self):
        return http("GET", f"http://127.0.0.1:{self.admin_port}/metrics")[1].decode()

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            self.log.close()

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()


@pytest.fixture
def notifd_factory(tmp_path):
    started = []

    def make(plugins_yaml="", extra_yaml="", env=None, name="notifd", start=True):
        n = Notifd(tmp_path, plugins_yaml, extra_yaml, env, name)
        started.append(n)
        return n.start() if start else n

    yield make
    for n in started:
        try:
            n.stop()
        except Exception:
            pass


# ---- backends this build has (meson -Dkafka/-Dredis/-Dmongodb) ----------

# The fixtures that start a distributed backend, and what they need.
BACKEND_FIXTURES = {
    "ferretdb": {"mongodb"},
    "ferretdb_sqlite": {"mongodb"},
    "kafka": {"kafka"},
    "redis": {"redis"},
    "cluster": {"kafka", "redis", "mongodb"},
    "stack": {"kafka", "redis", "mongodb"},
}


def built_backends():
    """The backends compiled in (NOTIFD_BACKENDS from meson; all when unset)."""
    env = os.environ.get("NOTIFD_BACKENDS")
    return {"kafka", "redis", "mongodb"} if env is None else set(filter(None, env.split(",")))


def pytest_collection_modifyitems(config, items):
    have = built_backends()
    for item in items:
        need = set()
        for name in getattr(item, "fixturenames", ()):
            need |= BACKEND_FIXTURES.get(name, set())
        missing = sorted(need - have)
        if missing:
            item.add_marker(pytest.mark.skip(
                reason=f"built without {', '.join(missing)} (meson -D<backend>=disabled)"))
