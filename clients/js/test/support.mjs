// What the library's tests share: a real notifd (config/single-node.yaml
// with NOTIFD_* overrides, data in a temporary directory) and waiting.
//
// The daemon and the tree come from the environment (tests/jsclient/run.sh,
// the meson test `jsclient`, sets them; by hand, a build in ./build is used):
//   NOTIFD_BIN          the notifd executable (default <tree>/build/host/notifd)
//   NOTIFD_BUILD_ROOT   the build dir, for plugins/ (default: NOTIFD_BIN's ../..)
//   NOTIFD_SOURCE_ROOT  the source tree (default: three levels up from here)
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { logTail, singleNode, sleep, startNotifd, waitFor, WAIT_MS } from "../../../tests/lib/notifd_process.mjs";

export { sleep, waitFor, WAIT_MS };

const here = path.dirname(fileURLToPath(import.meta.url));
export const sourceRoot = path.resolve(process.env.NOTIFD_SOURCE_ROOT || path.join(here, "..", "..", ".."));
export const notifdBin = path.resolve(process.env.NOTIFD_BIN || path.join(sourceRoot, "build", "host", "notifd"));
const buildRoot = path.resolve(process.env.NOTIFD_BUILD_ROOT || path.join(path.dirname(notifdBin), ".."));
export const INTERNAL_TOKEN = "js-client-test-internal-token-0123456789";

// Why the daemon tests cannot run here, or null.
export function skipReason() {
  if (!fs.existsSync(notifdBin)) return `notifd not built (${notifdBin}; set NOTIFD_BIN)`;
  return null;
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
    Object.assign(this, await singleNode({ buildRoot, sourceRoot, dataDir: path.join(this.dir, "data") }));
    this.env.NOTIFD_INTERNAL_TOKEN = INTERNAL_TOKEN;
    return this;
  }

  async start() {
    fs.mkdirSync(path.dirname(this.logPath), { recursive: true });
    const { proc, exited } = await startNotifd({
      bin: notifdBin, config: this.config, cwd: this.dir, env: this.env, logPath: this.logPath,
      adminPort: this.adminPort,
    });
    this.proc = proc;
    this.exited = exited;
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

  logTail() { return logTail(this.logPath); }

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
