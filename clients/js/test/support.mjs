// What the library's tests share: a real notifd (config/single-node.yaml
// with NOTIFD_* overrides, data in a temporary directory) and waiting.
//
// The daemon and the tree come from the environment (tests/meson.build of
// the client sets them; by hand, a build in ./build is used):
//   NOTIFD_BIN          the notifd executable (default <tree>/build/host/notifd)
//   NOTIFD_BUILD_ROOT   the build dir, for plugins/ (default: NOTIFD_BIN's ../..)
//   NOTIFD_SOURCE_ROOT  the source tree (default: three levels up from here)
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
export const sourceRoot = path.resolve(process.env.NOTIFD_SOURCE_ROOT || path.join(here, "..", "..", ".."));
export const notifdBin = path.resolve(process.env.NOTIFD_BIN || path.join(sourceRoot, "build", "host", "notifd"));
const buildRoot = path.resolve(process.env.NOTIFD_BUILD_ROOT || path.join(path.dirname(notifdBin), ".."));
export const WAIT_MS = 20000; // upper bound of every wait (the ASan build is slow)
export const INTERNAL_TOKEN = "js-client-test-internal-token-0123456789";

// Why the daemon tests cannot run here, or null.
export function skipReason() {
  if (!fs.existsSync(notifdBin)) return `notifd not built (${notifdBin}; set NOTIFD_BIN)`;
  return null;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function waitFor(what, fn, timeout = WAIT_MS) {
  const end = Date.now() + timeout;
  let last = null;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = null;
    } catch (e) { last = e; }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}` + (last ? ` (${last.message})` : ""));
    await sleep(25);
  }
}

function bindable(port, host) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once("error", () => resolve(false));
    s.listen({ port, host, exclusive: true }, () => s.close(() => resolve(true)));
  });
}

// A free port below 32768 (outside Linux's ephemeral range, so an
// outgoing connection cannot take it between the check and notifd's
// bind), checked on 0.0.0.0 and 127.0.0.1.
export async function freePort() {
  for (let i = 0; i < 200; i++) {
    const p = 20000 + Math.floor(Math.random() * 12700);
    if (await bindable(p, "0.0.0.0") && await bindable(p, "127.0.0.1")) return p;
  }
  throw new Error("no free port below 32768");
}

// notifd with every role of config/single-node.yaml on loopback ports; it
// keeps its ports and data dir across stop()/start(), so a restart is a
// restart of the same server.
export class Notifd {
  constructor(name = "notifd") {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), "notifd-js-"));
    this.logPath = process.env.NOTIFD_TEST_LOG_DIR
      ? path.join(process.env.NOTIFD_TEST_LOG_DIR, name + ".log") : path.join(this.dir, name + ".log");
    this.config = path.join(this.dir, "notifd.yaml");
    fs.copyFileSync(path.join(sourceRoot, "config", "single-node.yaml"), this.config);
    this.proc = null;
  }

  async init() {
    this.port = await freePort();
    this.adminPort = await freePort();
    const smtpPort = await freePort(); // nothing listens: the email role just retries
    this.base = `http://127.0.0.1:${this.port}`;
    this.env = {
      ...process.env,
      NOTIFD_ADDRESS: "127.0.0.1",
      NOTIFD_PORT: String(this.port),
      NOTIFD_ADMIN_PORT: String(this.adminPort),
      NOTIFD_DATA_DIR: path.join(this.dir, "data"),
      NOTIFD_PLUGIN_DIR: path.join(buildRoot, "plugins"),
      NOTIFD_WEB_DIR: path.join(sourceRoot, "web"),
      NOTIFD_TEMPLATES_DIR: path.join(sourceRoot, "config", "templates"),
      NOTIFD_SMTP_URL: `smtp://127.0.0.1:${smtpPort}`,
      NOTIFD_INTERNAL_TOKEN: INTERNAL_TOKEN,
    };
    return this;
  }

  async start() {
    fs.mkdirSync(path.dirname(this.logPath), { recursive: true });
    const logFd = fs.openSync(this.logPath, "a");
    const proc = spawn(notifdBin, ["-c", this.config], { cwd: this.dir, env: this.env, stdio: ["ignore", logFd, logFd] });
    fs.closeSync(logFd);
    this.proc = proc;
    this.exited = new Promise((resolve) => proc.on("exit", (code, signal) => resolve({ code, signal })));
    await waitFor("notifd /readyz", async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        throw new Error(`notifd exited (${proc.exitCode ?? proc.signalCode}):\n${this.logTail()}`);
      }
      const r = await fetch(`http://127.0.0.1:${this.adminPort}/readyz`).catch(() => null);
      return r && r.status === 200;
    });
  }

  running() { return this.proc && this.proc.exitCode === null && this.proc.signalCode === null; }

  async stop() {
    if (!this.running()) return;
    this.proc.kill("SIGTERM");
    const r = await Promise.race([this.exited, sleep(WAIT_MS).then(() => null)]);
    if (!r) { this.proc.kill("SIGKILL"); throw new Error("notifd did not stop within the wait after SIGTERM"); }
    if (r.code !== 0) throw new Error(`notifd exit ${r.code ?? r.signal} after SIGTERM:\n${this.logTail()}`);
  }

  async close() {
    if (this.running()) await this.stop().catch(() => this.proc.kill("SIGKILL"));
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  logTail() {
    try { return fs.readFileSync(this.logPath, "utf8").split("\n").slice(-40).join("\n"); } catch { return ""; }
  }

  // A notification posted as another service would (internal token).
  async notify(user, type, payload) {
    const r = await fetch(`${this.base}/notifications/${type}?user_id=${encodeURIComponent(user)}`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Notifd-Internal-Token": INTERNAL_TOKEN },
      body: JSON.stringify(payload),
    });
    if (r.status !== 200) throw new Error(`POST /notifications/${type}: ${r.status} ${await r.text()}`);
    return r.json();
  }
}
