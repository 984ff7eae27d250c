// Browser test of the web chat client (web/) served by the built notifd
// running config/single-node.yaml (all five roles, embedded backends).
//
//   node tests/browser/chat.test.mjs BUILD_ROOT SOURCE_ROOT ARTIFACT_DIR
//
// Two browser contexts are two users (alice on a phone-sized screen, bob
// on a desktop one); a third user (carol) talks to them over HTTP.  Every
// check waits for a condition in the page; nothing asserts on durations.
// Screenshots and the notifd log go to ARTIFACT_DIR.  run.sh is the entry
// point that meson calls (it skips when node or chromium is missing).
import { chromium } from "playwright-core";
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

const [buildRoot, sourceRoot, artifactDir] = process.argv.slice(2).map((p) => path.resolve(p));
if (!artifactDir) {
  console.error("usage: chat.test.mjs BUILD_ROOT SOURCE_ROOT ARTIFACT_DIR");
  process.exit(2);
}
const NOTIFD = path.join(buildRoot, "host", "notifd");
const CHROMIUM = process.env.NOTIFD_CHROMIUM || "/usr/bin/chromium";
const WAIT_MS = 20000; // upper bound of every wait (the ASan build is slow)

const ALICE = "alice";
const BOB = 'bob&<b>co</b>';   // markup in an id: must show as text
const CAROL = "carol";

// ---------------------------------------------------------------- helpers

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => console.log("#", ...a);

function fail(msg) { throw new Error(msg); }
function assert(cond, msg) { if (!cond) fail("assertion failed: " + msg); }
function assertEq(actual, expected, msg) {
  const a = JSON.stringify(actual), e = JSON.stringify(expected);
  if (a !== e) fail(`${msg}\n  expected: ${e}\n  actual:   ${a}`);
}

async function waitFor(what, fn, timeout = WAIT_MS) {
  const end = Date.now() + timeout;
  let last = null;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = null;
    } catch (e) { last = e; }
    if (Date.now() > end) fail(`timed out waiting for ${what}` + (last ? ` (${last.message})` : ""));
    await sleep(50);
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

// The contract's stream id (Go ComputeStreamID): ids sorted bytewise,
// concatenated, SHA-256, first 16 hex digits.
function streamId(a, b) {
  const [x, y] = [Buffer.from(a, "utf8"), Buffer.from(b, "utf8")];
  const [lo, hi] = Buffer.compare(x, y) <= 0 ? [x, y] : [y, x];
  return createHash("sha256").update(Buffer.concat([lo, hi])).digest("hex").slice(0, 16);
}

// ---------------------------------------------------------------- notifd

class Notifd {
  constructor(dir) {
    this.dir = dir;
    this.dataDir = path.join(dir, "data");
    this.logPath = path.join(artifactDir, "notifd.log");
    this.internalToken = randomBytes(16).toString("hex");
    this.proc = null;
    // config/single-node.yaml as committed; NOTIFD_ADDRESS binds the
    // public listener to loopback (tests start servers on 127.0.0.1).
    this.config = path.join(sourceRoot, "config", "single-node.yaml");
  }

  async init() {
    this.port = await freePort();
    this.adminPort = await freePort();
    this.smtpPort = await freePort(); // nothing listens: the email role just retries
    this.base = `http://127.0.0.1:${this.port}`;
    return this;
  }

  async start() {
    const env = {
      ...process.env,
      NOTIFD_ADDRESS: "127.0.0.1",
      NOTIFD_PORT: String(this.port),
      NOTIFD_ADMIN_PORT: String(this.adminPort),
      NOTIFD_DATA_DIR: this.dataDir,
      NOTIFD_PLUGIN_DIR: path.join(buildRoot, "plugins"),
      NOTIFD_WEB_DIR: path.join(sourceRoot, "web"),
      NOTIFD_TEMPLATES_DIR: path.join(sourceRoot, "config", "templates"),
      NOTIFD_SMTP_URL: `smtp://127.0.0.1:${this.smtpPort}`,
      NOTIFD_INTERNAL_TOKEN: this.internalToken,
    };
    const logFd = fs.openSync(this.logPath, "a");
    this.proc = spawn(NOTIFD, ["-c", this.config], { cwd: this.dir, env, stdio: ["ignore", logFd, logFd] });
    fs.closeSync(logFd);
    const proc = this.proc;
    this.exited = new Promise((resolve) => proc.on("exit", (code, signal) => resolve({ code, signal })));
    log(`notifd pid ${proc.pid} on 127.0.0.1:${this.port} (admin ${this.adminPort})`);
    await waitFor("notifd /readyz", async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        fail(`notifd exited (${proc.exitCode ?? proc.signalCode}):\n${this.logTail()}`);
      }
      const r = await fetch(`http://127.0.0.1:${this.adminPort}/readyz`).catch(() => null);
      return r && r.status === 200;
    });
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

  logTail() {
    try { return fs.readFileSync(this.logPath, "utf8").split("\n").slice(-40).join("\n"); } catch { return ""; }
  }

  async post(pathname, body, headers = {}) {
    const r = await fetch(this.base + pathname, {
      method: "POST", headers: { "Content-Type": "application/json", ...headers },
      body: JSON.stringify(body),
    });
    return { status: r.status, body: await r.json().catch(() => null) };
  }
}

// ---------------------------------------------------------------- pages

// Records every chat/notification websocket a page opens and the frames
// it receives.
function track(page) {
  const t = { chatSockets: [], chatFrames: [], noteFrames: [] };
  page.on("websocket", (ws) => {
    const u = new URL(ws.url());
    const frames = u.pathname === "/chat/subscribe-websocket" ? t.chatFrames
      : u.pathname === "/notifications/subscribe" ? t.noteFrames : null;
    if (!frames) return;
    if (frames === t.chatFrames) t.chatSockets.push(ws);
    ws.on("framereceived", (f) => { try { frames.push(JSON.parse(f.payload)); } catch { /* not JSON */ } });
  });
  return t;
}

const messages = (page) => page.$$eval("#messages li", (els) => els.map((e) => ({
  id: e.dataset.id, text: e.querySelector(".text").textContent, mine: e.classList.contains("mine"),
})));
const texts = async (page) => (await messages(page)).map((m) => m.text);
const status = (page) => page.textContent("#status");
const conversations = (page) => page.$$eval("#conversations li", (els) => els.map((e) => ({
  peer: e.dataset.peer,
  name: e.querySelector(".name").textContent,
  badge: e.querySelector(".badge") ? e.querySelector(".badge").textContent : null,
  active: e.classList.contains("active"),
})));

async function signIn(page, base, me) {
  await page.goto(base + "/");
  await page.fill("#me", me);
  await page.click("#login-btn");
  await waitFor(`${me} signed in`, async () => (await page.textContent("#who")) === me);
}

async function openChat(page, peer) {
  await page.fill("#peer", peer);
  await page.click("[data-testid=open]");
  await waitFor(`conversation with ${peer} open`, async () =>
    (await page.textContent("#title")) === "Chat with " + peer && (await status(page)) === "online");
}

async function sendUI(page, text) {
  await page.fill("#text", text);
  await page.press("#text", "Enter");
  await waitFor(`"${text}" sent`, async () => (await page.inputValue("#text")) === "");
  const err = (await page.textContent("#error")).trim();
  if (err) fail(`send failed in the page: ${err}`);
}

// Waits until `text` is shown exactly once in the page.
async function expectShownOnce(page, text, who) {
  await waitFor(`"${text}" shown to ${who}`, async () => (await texts(page)).includes(text));
  const n = (await texts(page)).filter((t) => t === text).length;
  assertEq(n, 1, `"${text}" shown ${n} times to ${who}`);
}

// ---------------------------------------------------------------- test

let browser = null, notifd = null, tmp = null;
const pages = {};
let passed = 0;

async function screenshot(name) {
  for (const [who, page] of Object.entries(pages)) {
    await page.screenshot({ path: path.join(artifactDir, `${name}-${who}.png`), fullPage: true }).catch(() => {});
  }
}

async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
  } catch (e) {
    console.log(`not ok ${passed + 1} - ${name}`);
    throw e;
  }
  passed++;
  console.log(`ok ${passed} - ${name} (${Date.now() - t0} ms)`);
}

async function main() {
  fs.rmSync(artifactDir, { recursive: true, force: true });
  fs.mkdirSync(artifactDir, { recursive: true });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "notifd-browser-"));
  notifd = await new Notifd(tmp).init();
  await notifd.start();
  const base = notifd.base;

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--disable-dev-shm-usage"],
  });
  log(`chromium ${browser.version()}`);
  // alice: a phone-sized screen, bob: a desktop one.  Both run a fake
  // clock (flowing like the real one until paused) so the test can hold a
  // reconnect back and step through the backoff.
  const ctxA = await browser.newContext({ viewport: { width: 390, height: 760 }, isMobile: true, hasTouch: true });
  const ctxB = await browser.newContext({ viewport: { width: 1100, height: 760 } });
  await ctxA.clock.install();
  await ctxB.clock.install();
  // Counts close events of alice's chat sockets as the page sees them (the
  // reconnect timer is armed in the same dispatch), so the backoff steps
  // below advance her clock only once the page has handled a failure.
  await ctxA.addInitScript(() => {
    const Native = window.WebSocket;
    window.__chatCloses = 0;
    window.WebSocket = class extends Native {
      constructor(...args) {
        super(...args);
        if (String(args[0]).includes("/chat/subscribe-websocket")) {
          this.addEventListener("close", () => { window.__chatCloses++; });
        }
      }
    };
  });
  const A = pages.alice = await ctxA.newPage();
  const B = pages.bob = await ctxB.newPage();
  const pageErrors = [];
  for (const [who, p] of Object.entries(pages)) {
    p.on("pageerror", (e) => pageErrors.push(`${who}: ${e.message}`));
    p.on("dialog", (d) => { pageErrors.push(`${who}: unexpected dialog ${d.message()}`); d.dismiss().catch(() => {}); });
  }
  const tA = track(A), tB = track(B);
  const sidAB = streamId(ALICE, BOB);

  await step("web/sha256.js computes the same stream ids as the server's algorithm", async () => {
    await A.goto(base + "/");
    const pairs = [[ALICE, BOB], [BOB, ALICE], ["a", "ab"], ["ab", "a"], ["", "x"],
      ["Zoë", "zoe"], ["日本", "\u{1F600}"], ["x".repeat(60), "y".repeat(70)]];
    const got = await A.evaluate((ps) => ps.map(([a, b]) => window.notifdStreamId(a, b)), pairs);
    assertEq(got, pairs.map(([a, b]) => streamId(a, b)), "stream ids");
  });

  await step("both users sign in and open their conversation", async () => {
    await signIn(A, base, ALICE);
    await signIn(B, base, BOB);
    await openChat(A, BOB);
    await openChat(B, ALICE);
    assertEq(await A.textContent("#title"), "Chat with " + BOB, "peer id shown as text");
    assertEq(await B.$$eval("#title b, #conversations b", (e) => e.length), 0, "markup in an id is not parsed");
    assert(tA.chatSockets.length === 1 && tB.chatSockets.length === 1, "one chat socket each");
    const u = new URL(tA.chatSockets[0].url());
    assertEq([u.searchParams.get("stream_id"), u.searchParams.get("sender_id"), u.searchParams.get("receiver_id")],
      [sidAB, ALICE, BOB], "chat socket parameters");
  });

  await step("messages both ways appear in both pages, each once, in order", async () => {
    await sendUI(A, "hello from alice");
    await expectShownOnce(B, "hello from alice", "bob");
    await sendUI(B, "hi alice, bob here");
    await expectShownOnce(A, "hi alice, bob here", "alice");
    await sendUI(A, "second from alice");
    await expectShownOnce(B, "second from alice", "bob");
    // The sender gets its message twice (POST answer and chat socket):
    // wait for the socket frame, then it must still be shown once.
    for (const [page, t, who, text] of [[A, tA, "alice", "second from alice"], [B, tB, "bob", "hi alice, bob here"]]) {
      await waitFor(`${who}'s own message on its chat socket`, () => t.chatFrames.some((f) => f.content === text));
      await expectShownOnce(page, text, who);
    }
    const want = ["hello from alice", "hi alice, bob here", "second from alice"];
    assertEq(await texts(A), want, "alice's conversation");
    assertEq(await texts(B), want, "bob's conversation");
    assertEq((await messages(A)).map((m) => m.mine), [true, false, true], "alice's own messages marked");
    // Bob's conversation is open: no unread badge for it anywhere.
    assertEq((await conversations(A)).filter((c) => c.badge !== null), [], "no badge for the open chat");
    await screenshot("1-exchange");
  });

  await step("message text with markup is shown as text, never run", async () => {
    const evil = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>';
    await sendUI(B, evil);
    await expectShownOnce(A, evil, "alice");
    await expectShownOnce(B, evil, "bob");
    for (const p of [A, B]) {
      assertEq(await p.$$eval("#messages img, #messages script", (e) => e.length), 0, "no element from the text");
      assertEq(await p.evaluate(() => window.__pwned ?? null), null, "no script ran");
    }
  });

  await step("a third user's messages raise a badge on the closed conversation", async () => {
    const sidAC = streamId(ALICE, CAROL);
    for (const content of ["carol: are you there?", "carol: ping"]) {
      const r = await notifd.post("/chat/persist", { content, stream_id: sidAC, sender_id: CAROL, receiver_id: ALICE });
      assertEq(r.status, 201, "carol's POST");
    }
    // bob's notifications socket too (user id with markup, URL-encoded)
    const r = await notifd.post("/chat/persist",
      { content: "carol to bob", stream_id: streamId(BOB, CAROL), sender_id: CAROL, receiver_id: BOB });
    assertEq(r.status, 201, "carol's POST to bob");
    await waitFor("alice's badge for carol = 2", async () =>
      (await conversations(A)).some((c) => c.peer === CAROL && c.badge === "2"));
    await waitFor("bob's badge for carol = 1", async () =>
      (await conversations(B)).some((c) => c.peer === CAROL && c.badge === "1"));
    const convA = await conversations(A);
    assertEq(convA.find((c) => c.peer === BOB), { peer: BOB, name: BOB, badge: null, active: true },
      "bob's entry: open, no badge");
    assert(!(await texts(A)).some((t) => t.startsWith("carol")), "carol's messages not in bob's conversation");
    await screenshot("2-badge");
    // Opening carol's conversation clears the badge and shows her history.
    await A.click(`#conversations li[data-peer="${CAROL}"]`);
    await waitFor("carol's history", async () =>
      JSON.stringify(await texts(A)) === JSON.stringify(["carol: are you there?", "carol: ping"]));
    assertEq((await conversations(A)).find((c) => c.peer === CAROL).badge, null, "badge cleared");
    assertEq(new URL(A.url()).searchParams.get("peer"), CAROL, "open conversation in the address");
    // Back to bob by the list.
    await A.click(`#conversations li[data-peer="${BOB.replace(/"/g, '\\"')}"]`);
    await waitFor("bob's history again", async () => (await texts(A)).length === 4 && (await status(A)) === "online");
  });

  await step("history is ordered by time, not by the text of created_at", async () => {
    // A conversation whose history the test serves itself: times with 0,
    // 1, 2 and 9 fractional digits and a zone offset, in scrambled order.
    // As strings "…00.7Z" sorts after "…00.75Z" and "11:59:59.5+02:00"
    // after "10:00:01Z".
    const peer = "order-test";
    const sid = streamId(ALICE, peer);
    const msg = (id, created_at, content) => ({ message_id: id, content, created_at, stream_id: sid, sender_id: peer, receiver_id: ALICE });
    const body = { messages: [
      msg("m2", "2030-01-01T10:00:00.7Z", "second"),
      msg("m5", "2030-01-01T10:00:01.001500001Z", "fifth"),
      msg("m4", "2030-01-01T10:00:01Z", "fourth"),
      msg("m1", "2030-01-01T11:59:59.5+02:00", "first"),
      msg("m3", "2030-01-01T10:00:00.75Z", "third"),
    ], next_before: null };
    const pattern = `**/chat/streams/${sid}/messages*`;
    await A.route(pattern, (route) => route.fulfill({ status: 200, contentType: "application/json", body: JSON.stringify(body) }));
    await openChat(A, peer);
    await waitFor("served history shown", async () => (await texts(A)).length === 5);
    assertEq(await texts(A), ["first", "second", "third", "fourth", "fifth"], "order by time");
    await A.unroute(pattern);
    await A.click(`#conversations li[data-peer="${BOB.replace(/"/g, '\\"')}"]`);
    await waitFor("bob's conversation again", async () => (await texts(A)).length === 4 && (await status(A)) === "online");
  });

  await step("the page fits a phone-sized screen", async () => {
    const m = await A.evaluate(() => {
      const send = document.getElementById("send").getBoundingClientRect();
      const list = document.getElementById("conversations").getBoundingClientRect();
      const msgs = document.getElementById("messages").getBoundingClientRect();
      return { scrollW: document.documentElement.scrollWidth, innerW: window.innerWidth,
        sendRight: send.right, listBottom: list.bottom, msgsTop: msgs.top };
    });
    assert(m.scrollW <= m.innerW, `no horizontal scrolling (${m.scrollW} > ${m.innerW})`);
    assert(m.sendRight <= m.innerW, "send button inside the screen");
    assert(m.listBottom <= m.msgsTop, "conversation list stacked above the messages");
  });

  const historyAB = ["hello from alice", "hi alice, bob here", "second from alice",
    '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'];

  await step("a reload comes back to the same conversation with its history", async () => {
    await A.reload();
    await waitFor("alice back in bob's conversation", async () =>
      (await A.textContent("#who")) === ALICE && (await A.textContent("#title")) === "Chat with " + BOB &&
      (await status(A)) === "online");
    await waitFor("history after reload", async () => (await texts(A)).length === historyAB.length);
    assertEq(await texts(A), historyAB, "history after reload");
    assertEq(new Set((await messages(A)).map((m) => m.id)).size, historyAB.length, "distinct message ids");
    await screenshot("3-reload");
  });

  // Freezes the page's timers (the reconnect timer among them) from now on.
  async function pause(page) {
    const now = await page.evaluate(() => Date.now());
    await page.clock.pauseAt(now + 1000);
  }

  await step("server closes the chat socket (4001): reconnect and refetch the missed message", async () => {
    await pause(A); // alice's reconnect waits for the test
    const r = await notifd.post(`/chat/streams/${sidAB}/close`, {}, { "X-Notifd-Internal-Token": notifd.internalToken });
    assertEq([r.status, r.body && r.body.closed], [200, 2], "both chat sockets closed");
    await waitFor("alice connecting", async () => (await status(A)) === "connecting");
    // bob's clock runs: he reconnects and sends while alice is away.
    const bobSockets = tB.chatSockets.length;
    await waitFor("bob reconnected", async () => tB.chatSockets.length > bobSockets && (await status(B)) === "online");
    const text = "sent while alice was disconnected";
    await sendUI(B, text);
    await waitFor("bob's socket got it (delivery ran)", () => tB.chatFrames.some((f) => f.content === text));
    assert(!(await texts(A)).includes(text), "alice cannot have it yet: her socket is closed");
    assertEq(await status(A), "connecting", "alice still disconnected");
    await A.clock.resume();
    await expectShownOnce(A, text, "alice");
    await waitFor("alice online", async () => (await status(A)) === "online");
    historyAB.push(text);
    assertEq(await texts(A), historyAB, "alice's conversation after the catch-up");
  });

  await step("notifd restarts: backoff 0.5 s then 1 s, reconnect, history and badges again", async () => {
    await pause(A);
    const n0 = tA.chatSockets.length;
    const closes = () => A.evaluate(() => window.__chatCloses);
    const c0 = await closes();
    await notifd.stop(); // SIGTERM, exit code 0 asserted
    await waitFor("alice's chat socket closed", async () => (await closes()) === c0 + 1);
    await waitFor("alice connecting", async () => (await status(A)) === "connecting");
    await waitFor("bob connecting", async () => (await status(B)) === "connecting");
    await screenshot("4-server-down");
    // Backoff, on alice's paused clock: the first retry 500 ms after the
    // drop, the second 1000 ms after the first failed.  (The pauses before
    // the "no retry yet" checks can only make those checks more lenient.)
    await A.clock.runFor(499); await sleep(300);
    assertEq(tA.chatSockets.length, n0, "no retry before 500 ms");
    await A.clock.runFor(1);
    await waitFor("first retry", () => tA.chatSockets.length === n0 + 1);
    await waitFor("first retry refused", async () => (await closes()) === c0 + 2);
    await A.clock.runFor(999); await sleep(300);
    assertEq(tA.chatSockets.length, n0 + 1, "no second retry before 1000 ms");
    await A.clock.runFor(1);
    await waitFor("second retry", () => tA.chatSockets.length === n0 + 2);
    await waitFor("second retry refused", async () => (await closes()) === c0 + 3);

    await notifd.start(); // same ports, same data directory
    // bob's clock runs on; move it on so his next retry comes now.
    await waitFor("bob online again", async () => {
      if ((await status(B)) === "online") return true;
      await B.clock.fastForward(2000);
      return false;
    });
    const text = "sent after the restart";
    await sendUI(B, text);
    await waitFor("bob's socket got it", () => tB.chatFrames.some((f) => f.content === text));
    assert(!(await texts(A)).includes(text), "alice cannot have it yet");
    await A.clock.resume();
    await expectShownOnce(A, text, "alice");
    await waitFor("alice online", async () => (await status(A)) === "online");
    historyAB.push(text);
    assertEq(await texts(A), historyAB, "alice's conversation after the restart");
    assertEq(await texts(B), historyAB, "bob's conversation after the restart");
    // The notifications socket is back too.
    const r = await notifd.post("/chat/persist",
      { content: "carol again", stream_id: streamId(ALICE, CAROL), sender_id: CAROL, receiver_id: ALICE });
    assertEq(r.status, 201, "carol's POST");
    await waitFor("alice's badge for carol = 1", async () =>
      (await conversations(A)).some((c) => c.peer === CAROL && c.badge === "1"));
    await screenshot("5-after-restart");
  });

  await step("no script errors in the pages", async () => {
    assertEq(pageErrors, [], "page errors");
  });

  await step("notifd stops cleanly (exit 0)", async () => {
    await browser.close();
    browser = null;
    await notifd.stop();
  });
}

async function cleanup() {
  if (browser) {
    await screenshot("failure");
    await browser.close().catch(() => {});
  }
  if (notifd) notifd.kill();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
}

const watchdog = setTimeout(() => {
  console.log("not ok - overall time limit reached");
  if (notifd) notifd.kill();
  process.exit(1);
}, 110000);

for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, () => { if (notifd) notifd.kill(); process.exit(1); });
}

try {
  await main();
  clearTimeout(watchdog);
  await cleanup();
  console.log(`browser: ${passed} passed, 0 failed`);
  console.log(`# artifacts: ${artifactDir}`);
  process.exit(0);
} catch (e) {
  console.log("# FAILED:", e && e.stack ? e.stack : e);
  if (notifd) console.log("# notifd log tail:\n" + notifd.logTail().replace(/^/gm, "#   "));
  await cleanup().catch(() => {});
  clearTimeout(watchdog);
  console.log(`browser: ${passed} passed, 1 failed`);
  console.log(`# artifacts: ${artifactDir}`);
  process.exit(1);
}
