// The built notifd as the Node test scripts start it (tests/browser/lib.mjs,
// clients/js/test/support.mjs): config/single-node.yaml's NOTIFD_*
// variables for a daemon of this tree on loopback, and the process with
// its output appended to a log, ready once the admin /readyz says 200;
// and the waiting those scripts share.
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";

export const WAIT_MS = 20000; // upper bound of every wait (the ASan build is slow)

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls fn() every 50 ms until it returns something truthy (returned);
// throws after `timeout` ms, with the last error fn() threw.
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
    await sleep(50);
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

// A notifd of this tree with config/single-node.yaml on loopback:
// {port, adminPort, smtpPort, base, env}, env being this process's
// environment plus the NOTIFD_* variables: free ports, plugins of
// `buildRoot`, the web client and templates of `sourceRoot`, the data in
// `dataDir`, an SMTP port nothing listens on (the email role just retries).
export async function singleNode({ buildRoot, sourceRoot, dataDir }) {
  const port = await freePort(), adminPort = await freePort(), smtpPort = await freePort();
  const env = {
    ...process.env,
    NOTIFD_ADDRESS: "127.0.0.1",
    NOTIFD_PORT: String(port),
    NOTIFD_ADMIN_PORT: String(adminPort),
    NOTIFD_DATA_DIR: dataDir,
    NOTIFD_PLUGIN_DIR: path.join(buildRoot, "plugins"),
    NOTIFD_WEB_DIR: path.join(sourceRoot, "web"),
    NOTIFD_TEMPLATES_DIR: path.join(sourceRoot, "config", "templates"),
    NOTIFD_SMTP_URL: `smtp://127.0.0.1:${smtpPort}`,
  };
  return { port, adminPort, smtpPort, base: `http://127.0.0.1:${port}`, env };
}

// Starts `bin -c config` and waits for /readyz on `adminPort`; an exit before that throws with the log's
// tail.  Resolves {proc, exited} (exited: a promise of {code, signal}).
export async function startNotifd({ bin, config, cwd, env, logPath, adminPort }) {
  const logFd = fs.openSync(logPath, "a");
  const proc = spawn(bin, ["-c", config], { cwd, env, stdio: ["ignore", logFd, logFd] });
  fs.closeSync(logFd);
  const exited = new Promise((resolve) => proc.on("exit", (code, signal) => resolve({ code, signal })));
  await waitFor("notifd /readyz", async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(`notifd exited (${proc.exitCode ?? proc.signalCode}):\n${logTail(logPath)}`);
    }
    const r = await fetch(`http://127.0.0.1:${adminPort}/readyz`).catch(() => null);
    return r && r.status === 200;
  });
  return { proc, exited };
}

// The last 40 lines of a log ("" when unreadable).
export function logTail(logPath) {
  try { return fs.readFileSync(logPath, "utf8").split("\n").slice(-40).join("\n"); } catch { return ""; }
}
