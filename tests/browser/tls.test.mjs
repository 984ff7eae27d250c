// Chromium against notifd with listen.tls, started by
// tests/integration/test_tls.py (test PKI, web client in http.static_dir,
// chat_ws, notifications_ws, chat_persistence, chat_change_handler).
//
//   node tests/browser/tls.test.mjs BASE_URL SPKI_SHA256_BASE64 ARTIFACT_DIR
//
// Chromium is told to trust the test certificate the way its docs say:
// --ignore-certificate-errors-spki-list with the base64 SHA-256 of the
// server certificate's SubjectPublicKeyInfo (no ignoreHTTPSErrors, no CA
// install).  A browser without the flag must refuse the same page.  Then:
// /healthz over https, a wss round trip from page script, and the web chat
// client's round trip (two users, a message each way) over https + wss.
import { chromium } from "playwright-core";
import fs from "node:fs";
import path from "node:path";

const [base, spki, artifactDir] = process.argv.slice(2);
if (!artifactDir) {
  console.error("usage: tls.test.mjs BASE_URL SPKI_SHA256_BASE64 ARTIFACT_DIR");
  process.exit(2);
}
const CHROMIUM = process.env.NOTIFD_CHROMIUM || "/usr/bin/chromium";
const WAIT_MS = 20000;
const ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  "--disable-dev-shm-usage"];

const log = (...a) => console.log("#", ...a);
function check(cond, msg) { if (!cond) throw new Error("assertion failed: " + msg); }

async function until(what, fn) {
  const end = Date.now() + WAIT_MS;
  for (;;) {
    const v = await fn().catch(() => null);
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const launch = (extra) => chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...ARGS, ...extra] });

async function refusedWithoutFlag() {
  const browser = await launch([]);
  try {
    const page = await browser.newPage();
    const err = await page.goto(base + "/healthz").then(() => null, (e) => e);
    check(err && /ERR_CERT_AUTHORITY_INVALID/.test(err.message), `untrusted certificate refused (${err && err.message})`);
  } finally {
    await browser.close();
  }
}

async function healthzAndWss(page) {
  const resp = await page.goto(base + "/healthz");
  check(resp.status() === 200, `healthz status ${resp.status()}`);
  check((await resp.json()).status === "ok", "healthz body");
  const sec = await resp.securityDetails();
  log(`TLS: ${sec.protocol}, issuer ${sec.issuer}`);
  const wsBase = base.replace(/^https:/, "wss:");
  // A chat socket from page script, then a forward over fetch: the frame
  // comes back over wss.
  const got = await page.evaluate(async ({ wsBase }) => {
    const msg = { message_id: "tls-1", content: "over wss", created_at: "0001-01-01T00:00:00Z",
      stream_id: "6b79c4fda3031c04", sender_id: "Mr.A", receiver_id: "Mr.B" };
    const ws = new WebSocket(`${wsBase}/chat/subscribe-websocket?stream_id=${msg.stream_id}` +
      `&sender_id=Mr.A&receiver_id=Mr.B`);
    const frame = new Promise((resolve, reject) => {
      ws.onmessage = (e) => resolve(e.data);
      ws.onerror = () => reject(new Error("websocket error"));
    });
    await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onclose = () => reject(new Error("closed")); });
    const r = await fetch("/chat/forward-to-websocket", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(msg) });
    const data = JSON.parse(await frame);
    ws.close(1000);
    return { status: r.status, content: data.content };
  }, { wsBase });
  check(got.status === 200 && got.content === "over wss", `wss round trip ${JSON.stringify(got)}`);
}

async function webChat(browser) {
  const pages = [];
  for (const [me, peer] of [["alice", "bob"], ["bob", "alice"]]) {
    const page = await (await browser.newContext()).newPage();
    await page.goto(base + "/");
    await page.fill("#me", me);
    await page.click("#login-btn");
    await until(`${me} signed in`, async () => (await page.textContent("#who")) === me);
    await page.fill("#peer", peer);
    await page.click("[data-testid=open]");
    await until(`${me}'s chat online`, async () => (await page.textContent("#status")) === "online");
    pages.push(page);
  }
  const shown = (page, text) => until(`"${text}" shown`, async () =>
    (await page.$$eval("#messages li .text", (els) => els.map((e) => e.textContent))).includes(text));
  for (const [from, to, text] of [[0, 1, "hello bob, over TLS"], [1, 0, "hi alice, wss too"]]) {
    await pages[from].fill("#text", text);
    await pages[from].press("#text", "Enter");
    await shown(pages[to], text);
  }
  await pages[0].screenshot({ path: path.join(artifactDir, "tls-chat.png") });
}

async function main() {
  fs.mkdirSync(artifactDir, { recursive: true });
  await refusedWithoutFlag();
  log("without the SPKI flag: certificate refused");
  const browser = await launch([`--ignore-certificate-errors-spki-list=${spki}`]);
  try {
    log(`chromium ${browser.version()}`);
    await healthzAndWss(await (await browser.newContext()).newPage());
    log("https healthz and wss round trip: ok");
    await webChat(browser);
    log("web chat round trip over TLS: ok");
  } finally {
    await browser.close();
  }
}

main().then(() => { console.log("ok - chromium over TLS"); }, (e) => {
  console.log("not ok - " + (e.stack || e));
  process.exit(1);
});
