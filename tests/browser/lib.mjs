// What the browser tests share: the command line, the notifd process, the
// browser, page helpers and the TAP-like step runner.
//
//   node tests/browser/<name>.test.mjs BUILD_ROOT SOURCE_ROOT ARTIFACT_DIR
//
// Every check waits for a condition; nothing asserts on durations.
import { chromium } from "playwright-core";
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { logTail, singleNode, sleep, startNotifd, waitFor, WAIT_MS } from "../lib/notifd_process.mjs";

export { sleep, waitFor, WAIT_MS };

export const [buildRoot, sourceRoot, artifactDir] = process.argv.slice(2).map((p) => path.resolve(p));
if (!artifactDir) {
  console.error(`usage: ${path.basename(process.argv[1])} BUILD_ROOT SOURCE_ROOT ARTIFACT_DIR`);
  process.exit(2);
}
const NOTIFD = path.join(buildRoot, "host", "notifd");
const CHROMIUM = process.env.NOTIFD_CHROMIUM || "/usr/bin/chromium";

// ---------------------------------------------------------------- helpers

export const log = (...a) => console.log("#", ...a);

export function fail(msg) { throw new Error(msg); }
export function assert(cond, msg) { if (!cond) fail("assertion failed: " + msg); }
export function assertEq(actual, expected, msg) {
  const a = JSON.stringify(actual), e = JSON.stringify(expected);
  if (a !== e) fail(`${msg}\n  expected: ${e}\n  actual:   ${a}`);
}

// The contract's stream id (Go ComputeStreamID): ids sorted bytewise,
// concatenated, SHA-256, first 16 hex digits.
export function streamId(a, b) {
  const [x, y] = [Buffer.from(a, "utf8"), Buffer.from(b, "utf8")];
  const [lo, hi] = Buffer.compare(x, y) <= 0 ? [x, y] : [y, x];
  return createHash("sha256").update(Buffer.concat([lo, hi])).digest("hex").slice(0, 16);
}

// ---------------------------------------------------------------- notifd

// notifd on loopback ports, either with config/single-node.yaml as
// committed (`env`: more NOTIFD_* overrides) or, given `auth`, with a
// config of its own: the same five roles and that auth section (written
// as JSON, which YAML reads as it is).
export class Notifd {
  constructor(dir, { auth = null, env = {}, name = "notifd" } = {}) {
    this.dir = dir;
    this.auth = auth;
    this.env = env;
    this.dataDir = path.join(dir, name + "-data");
    this.logPath = path.join(artifactDir, name + ".log");
    this.config = auth ? path.join(dir, name + ".yaml") : path.join(sourceRoot, "config", "single-node.yaml");
    this.proc = null;
  }

  async init() {
    const extra = this.env;
    Object.assign(this, await singleNode({ buildRoot, sourceRoot, dataDir: this.dataDir }));
    const smtpPort = this.smtpPort;
    this.env = { ...this.env, ...extra };
    if (!this.auth) return this;
    const config = {
      listen: { address: "127.0.0.1", port: this.port },
      admin: { address: "127.0.0.1", port: this.adminPort },
      data_dir: this.dataDir,
      logging: { level: "info", format: "logfmt" },
      http: { static_dir: path.join(sourceRoot, "web") },
      auth: this.auth,
      plugin_dirs: [path.join(buildRoot, "plugins")],
      plugins: [
        { name: "chat_ws" },
        { name: "notifications_ws" },
        { name: "chat_persistence", config: { sqlite_synchronous: "normal" } },
        { name: "chat_change_handler" },
        { name: "email", config: {
          smtp_url: `smtp://127.0.0.1:${smtpPort}`,
          templates_dir: path.join(sourceRoot, "config", "templates"),
          chat_throttle: "10m",
        } },
      ],
    };
    fs.writeFileSync(this.config, JSON.stringify(config, null, 2) + "\n");
    return this;
  }

  async start() {
    const { proc, exited } = await startNotifd({
      bin: NOTIFD, config: this.config, cwd: this.dir, env: this.env, logPath: this.logPath,
      adminPort: this.adminPort,
    });
    this.proc = proc;
    this.exited = exited;
    log(`notifd pid ${proc.pid} on 127.0.0.1:${this.port} (admin ${this.adminPort})`);
  }

  running() { return this.proc && this.proc.exitCode === null && this.proc.signalCode === null; }

  // Graceful stop; a non-zero exit (ASan leak report included) fails.
  async stop() {
    if (!this.running()) fail("notifd is not running");
    process.kill(this.proc.pid, "SIGTERM");
    const timer = sleep(WAIT_MS).then(() => null);
    const r = await Promise.race([this.exited, timer]);
    if (!r) { this.kill(); fail("notifd did not stop within the wait after SIGTERM"); }
    if (r.code !== 0) fail(`notifd exit ${r.code ?? r.signal} after SIGTERM:\n${this.logTail()}`);
  }

  kill() { if (this.running()) process.kill(this.proc.pid, "SIGKILL"); }

  logTail() { return logTail(this.logPath); }

  async request(method, pathname, body, headers = {}) {
    const r = await fetch(this.base + pathname, {
      method, headers: body === undefined ? headers : { "Content-Type": "application/json", ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: r.status, body: await r.json().catch(() => null), headers: r.headers };
  }

  post(pathname, body, headers = {}) { return this.request("POST", pathname, body, headers); }

  // The HTTP status of a websocket upgrade (101 when accepted), which a
  // page never sees.
  upgradeStatus(pathAndQuery) {
    return new Promise((resolve, reject) => {
      const sock = net.connect(this.port, "127.0.0.1", () => {
        sock.write(`GET ${pathAndQuery} HTTP/1.1\r\nHost: 127.0.0.1:${this.port}\r\n` +
          `Origin: ${this.base}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
      });
      let got = "";
      sock.setTimeout(WAIT_MS, () => { sock.destroy(); reject(new Error("no upgrade answer")); });
      sock.on("data", (d) => {
        got += d.toString("latin1");
        const m = /^HTTP\/1\.1 (\d{3})/.exec(got);
        if (m) { sock.destroy(); resolve(Number(m[1])); }
      });
      sock.on("error", reject);
    });
  }
}

// ---------------------------------------------------------------- browser

// n browser contexts, the first phone-sized, the others desktop-sized,
// each with a fake clock (flowing like the real one until a test pauses
// or moves it).
export async function clockedContexts(browser, n) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const ctx = await browser.newContext(i === 0
      ? { viewport: { width: 390, height: 760 }, isMobile: true, hasTouch: true }
      : { viewport: { width: 1100, height: 760 } });
    await ctx.clock.install();
    out.push(ctx);
  }
  return out;
}

function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--disable-dev-shm-usage"],
  });
}

// Records every chat/notification websocket a page opens and the frames
// it receives.  chatFrames are the chat messages (a notifd.chat.v2
// message event counts as its message), chatEvents every chat frame as
// it came.
export function track(page) {
  const t = { chatSockets: [], noteSockets: [], chatFrames: [], chatEvents: [], noteFrames: [] };
  page.on("websocket", (ws) => {
    const u = new URL(ws.url());
    const chat = u.pathname === "/chat/subscribe-websocket";
    if (!chat && u.pathname !== "/notifications/subscribe") return;
    (chat ? t.chatSockets : t.noteSockets).push(ws);
    ws.on("framereceived", (f) => {
      let m;
      try { m = JSON.parse(f.payload); } catch { return; /* not JSON */ }
      if (!chat) { t.noteFrames.push(m); return; }
      t.chatEvents.push(m);
      if (m && m.type === undefined) t.chatFrames.push(m);
      else if (m && m.type === "message" && m.message) t.chatFrames.push(m.message);
    });
  });
  return t;
}

export const messages = (page) => page.$$eval("#messages li", (els) => els.map((e) => ({
  id: e.dataset.id, text: e.querySelector(".text").textContent, mine: e.classList.contains("mine"),
})));
export const texts = async (page) => (await messages(page)).map((m) => m.text);
export const status = (page) => page.textContent("#status");
export const conversations = (page) => page.$$eval("#conversations li", (els) => els.map((e) => ({
  peer: e.dataset.peer,
  name: e.querySelector(".name").textContent,
  badge: e.querySelector(".badge") ? e.querySelector(".badge").textContent : null,
  active: e.classList.contains("active"),
})));

export async function openChat(page, peer) {
  await page.fill("#peer", peer);
  await page.click("[data-testid=open]");
  await waitFor(`conversation with ${peer} open`, async () =>
    (await page.textContent("#title")) === "Chat with " + peer && (await status(page)) === "online");
}

export async function sendUI(page, text) {
  await page.fill("#text", text);
  await page.press("#text", "Enter");
  await waitFor(`"${text}" sent`, async () => (await page.inputValue("#text")) === "");
  const err = (await page.textContent("#error")).trim();
  if (err) fail(`send failed in the page: ${err}`);
}

// Waits until `text` is shown exactly once in the page.
export async function expectShownOnce(page, text, who) {
  await waitFor(`"${text}" shown to ${who}`, async () => (await texts(page)).includes(text));
  const n = (await texts(page)).filter((t) => t === text).length;
  assertEq(n, 1, `"${text}" shown ${n} times to ${who}`);
}

// Collects uncaught errors and dialogs of the pages.
export function watchErrors(pages) {
  const errors = [];
  for (const [who, p] of Object.entries(pages)) {
    p.on("pageerror", (e) => errors.push(`${who}: ${e.message}`));
    p.on("dialog", (d) => { errors.push(`${who}: unexpected dialog ${d.message()}`); d.dismiss().catch(() => {}); });
  }
  return errors;
}

// ---------------------------------------------------------------- runner

// Runs main(t) with t = {step, screenshot, pages, tmp, startNotifd,
// launch (the browser), finish (the closing steps)}, under an overall time limit; prints one "ok"/"not ok" line
// per step, cleans up and exits.
export async function run(name, main, limitMs = 110000) {
  let browser = null, passed = 0;
  const daemons = [];
  const pages = {};
  fs.rmSync(artifactDir, { recursive: true, force: true });
  fs.mkdirSync(artifactDir, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "notifd-browser-"));

  async function screenshot(shot) {
    for (const [who, page] of Object.entries(pages)) {
      await page.screenshot({ path: path.join(artifactDir, `${shot}-${who}.png`), fullPage: true }).catch(() => {});
    }
  }

  async function step(title, fn) {
    const t0 = Date.now();
    try {
      await fn();
    } catch (e) {
      console.log(`not ok ${passed + 1} - ${title}`);
      throw e;
    }
    passed++;
    console.log(`ok ${passed} - ${title} (${Date.now() - t0} ms)`);
  }

  async function cleanup() {
    if (browser) {
      await screenshot("failure");
      await browser.close().catch(() => {});
    }
    for (const n of daemons) n.kill();
    fs.rmSync(tmp, { recursive: true, force: true });
  }

  const watchdog = setTimeout(() => {
    console.log("not ok - overall time limit reached");
    for (const n of daemons) n.kill();
    process.exit(1);
  }, limitMs);
  for (const sig of ["SIGTERM", "SIGINT"]) {
    process.on(sig, () => { for (const n of daemons) n.kill(); process.exit(1); });
  }

  // The last steps of every test.
  async function finish(pageErrors, notifd) {
    await step("no script errors in the pages", async () => {
      assertEq(pageErrors, [], "page errors");
    });
    await step("notifd stops cleanly (exit 0)", async () => {
      await browser.close();
      browser = null;
      await notifd.stop();
    });
  }

  const t = {
    step, screenshot, pages, tmp, finish,
    // A started notifd (see Notifd), killed at the end if still running.
    async startNotifd(opts) {
      const n = await new Notifd(tmp, opts).init();
      daemons.push(n);
      await n.start();
      return n;
    },
    async launch() {
      browser = await launchBrowser();
      log(`chromium ${browser.version()}`);
      return browser;
    },
  };
  try {
    await main(t);
    clearTimeout(watchdog);
    await cleanup();
    console.log(`${name}: ${passed} passed, 0 failed`);
    console.log(`# artifacts: ${artifactDir}`);
    process.exit(0);
  } catch (e) {
    console.log("# FAILED:", e && e.stack ? e.stack : e);
    for (const n of daemons) console.log(`# ${path.basename(n.logPath)} tail:\n` + n.logTail().replace(/^/gm, "#   "));
    await cleanup().catch(() => {});
    clearTimeout(watchdog);
    console.log(`${name}: ${passed} passed, 1 failed`);
    console.log(`# artifacts: ${artifactDir}`);
    process.exit(1);
  }
}
