// The library against a real notifd (config/single-node.yaml, started by
// the test): node --test clients/js/test/
import { test, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { createECDH, randomBytes } from "node:crypto";
import fs from "node:fs";
import WebSocket from "ws";
import { NotifdClient, NotifdError, backoffDelay, streamId, parseTime, urlBase64ToBytes } from "../notifd.js";
import { Notifd, skipReason, waitFor, sleep } from "./support.mjs";

const skip = skipReason() || false;
const uid = (p) => p + "-" + randomBytes(4).toString("hex");
const PASSWORD = "correct horse battery";
let notifd = null;

// Every client a test made, closed after the test even when it failed: a
// failed test must not leave reconnecting sockets that keep node running.
const clients = new Set();
afterEach(() => { for (const c of clients) c.close(); clients.clear(); });

// Fast reconnects, so a restart is noticed within the test's waits.
const newClient = (opts = {}) => {
  const c = new NotifdClient({ baseUrl: notifd.base, WebSocket, backoff: { initialMs: 50, maxMs: 500 }, ...opts });
  clients.add(c);
  return c;
};

async function user(name) {
  const c = newClient();
  const id = uid(name);
  await c.register(id, PASSWORD);
  await c.login(id, PASSWORD);
  return c;
}

// Events of an emitter, collected.
function collect(em, type) {
  const got = [];
  em.on(type, (x) => got.push(x));
  return got;
}

const shipping = (n) => ({ order_id: "ORD-" + n, tracking_number: "TN-" + n, status: "shipped" });

before(async () => {
  if (skip) return;
  notifd = await new Notifd().init();
  await notifd.start();
});

after(async () => { if (notifd) await notifd.close(); });

test("backoff: exponential, jittered, bounded", () => {
  const o = { initialMs: 100, maxMs: 1000, factor: 2, jitter: 0.5 };
  assert.equal(backoffDelay(0, o, () => 0), 100);
  assert.equal(backoffDelay(3, o, () => 0), 800);
  assert.equal(backoffDelay(10, o, () => 0), 1000);
  assert.equal(backoffDelay(10, o, () => 1), 500);
  for (let a = 0; a < 60; a++) {
    const d = backoffDelay(a, o);
    assert.ok(d <= 1000 && d >= Math.min(1000, 100 * 2 ** a) / 2, `attempt ${a}: ${d}`);
  }
});

test("stream ids and times as the contract has them", () => {
  assert.equal(streamId("a", "b"), streamId("b", "a"));
  assert.match(streamId("alice", "bob"), /^[0-9a-f]{16}$/);
  assert.equal(parseTime("2026-07-03T17:59:45.72Z"), Date.parse("2026-07-03T17:59:45.720Z"));
  assert.equal(parseTime("2026-07-03T17:59:45Z"), Date.parse("2026-07-03T17:59:45.000Z"));
});

test("notifd serves the library to pages as /client/notifd.js", { skip }, async () => {
  const r = await fetch(notifd.base + "/client/notifd.js");
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type"), /^text\/javascript/);
  const served = await r.text();
  assert.equal(served, fs.readFileSync(new URL("../notifd.js", import.meta.url), "utf8"));
});

test("auth: register, login, me, refresh, refused logins", { skip }, async () => {
  const c = newClient();
  const id = uid("alice");
  assert.deepEqual(await c.register(id, PASSWORD), { user_id: id });
  await assert.rejects(c.register(id, PASSWORD), (e) => e instanceof NotifdError && e.status === 409);
  await assert.rejects(c.login(id, "wrong password"), (e) => e.status === 401);
  const tokens = collect(c, "token");
  const s = await c.login(id, PASSWORD);
  assert.equal(s.userId, id);
  assert.equal(c.userId, id);
  assert.ok(s.expiresAt > Date.now());
  assert.deepEqual(await c.me(), { user_id: id });
  const old = c.token;
  await sleep(1100); // a token of the same second may be the same bytes
  assert.equal(await c.refresh(), true);
  assert.notEqual(c.token, old);
  assert.equal(tokens.length, 2);
  assert.deepEqual(await c.me(), { user_id: id });
  assert.deepEqual(await c.probe(), { mode: "accounts", valid: true });
  c.close();
});

test("auth: a refused token is renewed by the refresh callback", { skip }, async () => {
  const good = await user("carol");
  let calls = 0;
  const c = newClient({
    token: "not-a-valid-token", userId: good.userId,
    refreshToken: async () => { calls++; return { token: good.token }; },
  });
  assert.deepEqual(await c.me(), { user_id: good.userId });
  assert.equal(calls, 1);
  // A callback that gives up ends the session.
  const expired = [];
  const d = newClient({ token: "not-a-valid-token", userId: "x", refreshToken: async () => null, onExpired: (m) => expired.push(m) });
  await assert.rejects(d.me(), (e) => e.status === 401);
  assert.equal(expired.length, 1);
  assert.equal(d.token, null);
  good.close();
});

test("chat: typed events between two clients (message, presence, typing, read)", { skip }, async () => {
  const alice = await user("alice");
  const bob = await user("bob");
  const a = alice.chat(bob.userId);
  const aMsgs = collect(a, "message"), aTyping = collect(a, "typing"), aRead = collect(a, "read"), aPresence = collect(a, "presence");
  await waitFor("alice's chat socket", () => a.connected);
  assert.equal(a.protocol, "notifd.chat.v2");
  const b = bob.chat(alice.userId);
  const bMsgs = collect(b, "message");
  await waitFor("bob's chat socket", () => b.connected);
  // Presence: bob's socket makes him online for alice.
  await waitFor("bob online for alice", () => aPresence.some((p) => p.user_id === bob.userId && p.online));

  const sent = await a.send("hello bob");
  assert.equal(sent.sender_id, alice.userId);
  assert.equal(sent.stream_id, streamId(alice.userId, bob.userId));
  await waitFor("bob gets the message", () => bMsgs.some((m) => m.message_id === sent.message_id));
  assert.equal(bMsgs[0].content, "hello bob");
  // Alice's own socket gets it too, once (deduplicated).
  await waitFor("alice's echo", () => aMsgs.length === 1);

  // Typing reaches the peer, not the typist.
  assert.equal(b.typing(), true);
  await waitFor("alice sees bob typing", () => aTyping.some((t) => t.user_id === bob.userId));

  // A read mark sends a receipt to the sender.
  const mark = await b.markRead(sent.message_id);
  assert.equal(mark.unread, 0);
  await waitFor("read receipt", () => aRead.some((r) => r.user_id === bob.userId && r.message_id === sent.message_id));

  // Conversations: alice's list has bob with the last message.
  const { conversations } = await alice.conversations();
  const conv = conversations.find((x) => x.peer_id === bob.userId);
  assert.ok(conv, "conversation listed");
  assert.equal(conv.last_message.message_id, sent.message_id);
  assert.equal(conv.peer_read_message_id, sent.message_id);

  // Bob leaves: alice sees him go offline (after the presence grace).
  b.close();
  await waitFor("bob offline for alice", () => aPresence.some((p) => p.user_id === bob.userId && !p.online), 20000);
  a.close();
  alice.close(); bob.close();
});

test("chat: history paging with next_before", { skip }, async () => {
  const alice = await user("alice");
  const bob = await user("bob");
  const ids = [];
  for (let i = 0; i < 7; i++) ids.push((await alice.sendMessage(bob.userId, "m" + i)).message_id);
  const p1 = await bob.history(alice.userId, { limit: 3 });
  assert.deepEqual(p1.messages.map((m) => m.content), ["m6", "m5", "m4"]);
  assert.ok(p1.nextBefore);
  const pages = [];
  for await (const p of bob.historyPages(alice.userId, { limit: 3 })) pages.push(p.messages.map((m) => m.content));
  assert.deepEqual(pages, [["m6", "m5", "m4"], ["m3", "m2", "m1"], ["m0"]]);
  // Idempotent send: the same message id is stored once.
  const again = await alice.sendMessage(bob.userId, "once", { messageId: "js-" + randomBytes(8).toString("hex") });
  const twice = await alice.sendMessage(bob.userId, "once", { messageId: again.message_id });
  assert.equal(twice.created_at, again.created_at);
  const all = (await bob.history(alice.userId, { limit: 50 })).messages;
  assert.equal(all.length, 8);
  alice.close(); bob.close();
});

test("notifications: inbox, mark read, live socket", { skip }, async () => {
  const c = await user("dave");
  const sock = c.notifications();
  const got = collect(sock, "notification");
  await waitFor("notification socket", () => sock.connected);
  for (let i = 0; i < 3; i++) await notifd.notify(c.userId, "shipping-update", shipping(i));
  await waitFor("3 live notifications", () => got.length === 3);
  assert.ok(got.every((n) => Number.isSafeInteger(n.id) && typeof n.notification_type === "string" && n.payload.status === "shipped"));
  const page = await c.inbox({ limit: 2 });
  assert.equal(page.unread, 3);
  assert.equal(page.notifications.length, 2);
  assert.deepEqual(page.notifications.map((n) => n.id), [got[2].id, got[1].id]);
  const rest = await c.inbox({ limit: 2, before: page.nextBefore });
  assert.deepEqual(rest.notifications.map((n) => n.id), [got[0].id]);
  assert.equal(rest.nextBefore, null);
  assert.deepEqual(await c.markNotificationsRead([got[0].id]), { unread: 2 });
  assert.deepEqual(await c.markNotificationsRead("all"), { unread: 0 });
  assert.equal((await c.inbox()).notifications.every((n) => n.read), true);
  // Preferences round trip.
  const prefs = await c.setPreferences({ channels: { default: { email: false } }, quiet_hours: null });
  assert.equal(prefs.channels.default.email, false);
  assert.deepEqual(await c.getPreferences(), prefs);
  // Closing the client closes its sockets: none reconnects (the backoff
  // here is 50 ms).
  const retries = collect(sock, "retry");
  c.close();
  assert.equal(sock.connected, false);
  await sleep(500);
  assert.equal(retries.length, 0);
  assert.equal(sock.connected, false);
});

test("push subscriptions: VAPID key, register, list, remove", { skip }, async () => {
  const c = await user("frank");
  const key = urlBase64ToBytes(await c.vapidPublicKey());
  assert.equal(key.length, 65); // applicationServerKey: an uncompressed P-256 point
  const ecdh = createECDH("prime256v1");
  ecdh.generateKeys();
  const endpoint = "https://push.example.invalid/" + randomBytes(8).toString("hex");
  const sub = { endpoint, expirationTime: null,
    keys: { p256dh: ecdh.getPublicKey().toString("base64url"), auth: randomBytes(16).toString("base64url") } };
  // A PushSubscription object is sent as its toJSON().
  assert.deepEqual(await c.addPushSubscription({ toJSON: () => sub }), { endpoint });
  assert.deepEqual(await c.listPushSubscriptions(), [{ endpoint }]);
  assert.equal(await c.removePushSubscription(endpoint), null); // 204
  await assert.rejects(c.removePushSubscription(endpoint), (e) => e.status === 404);
  await assert.rejects(c.addPushSubscription({ endpoint, keys: { p256dh: "AAAA", auth: "AAAA" } }), (e) => e.status === 400);
  c.close();
});

test("recovery across a notifd restart: no duplicates, nothing missed", { skip }, async () => {
  const alice = await user("alice");
  const b0 = await user("bob");
  // Bob's sockets cannot connect while `hold` is set, so what is sent
  // right after the restart is certainly sent while they are down.
  let hold = false;
  class HeldWebSocket extends WebSocket {
    constructor(...args) {
      if (hold) throw new Error("held by the test");
      super(...args);
    }
  }
  const bob = newClient({ token: b0.token, userId: b0.userId, WebSocket: HeldWebSocket });
  b0.close();
  const sock = bob.notifications({ since: 0 });
  const got = collect(sock, "notification");
  const chat = bob.chat(alice.userId);
  const chatMsgs = collect(chat, "message");
  const opens = collect(chat, "open");
  await waitFor("sockets", () => sock.connected && chat.connected);
  for (let i = 0; i < 3; i++) await notifd.notify(bob.userId, "shipping-update", shipping("a" + i));
  const m1 = await alice.sendMessage(bob.userId, "before the restart");
  // The chat message also makes a chat notification in bob's inbox.
  await waitFor("before the restart", () => got.length === 4 && chatMsgs.length === 1);

  hold = true;
  await notifd.stop();
  await waitFor("sockets down", () => !sock.connected && !chat.connected);
  await notifd.start();
  // Sent before the sockets are back (their backoff is running).
  const m2 = await alice.sendMessage(bob.userId, "while reconnecting");
  for (let i = 0; i < 2; i++) await notifd.notify(bob.userId, "shipping-update", shipping("b" + i));
  assert.ok(!sock.connected && !chat.connected, "sent while bob's sockets were down");
  hold = false;
  await waitFor("sockets back", () => sock.connected && chat.connected && opens.length === 2);
  for (let i = 0; i < 2; i++) await notifd.notify(bob.userId, "shipping-update", shipping("c" + i));
  const m3 = await alice.sendMessage(bob.userId, "after the restart");

  // The chat message's notification reaches the inbox through the bus,
  // after the POST was answered.
  const inbox = await waitFor("10 notifications in the inbox", async () => {
    const page = await bob.inbox({ limit: 200 });
    return page.notifications.length >= 10 && page;
  });
  const want = inbox.notifications.map((n) => n.id).reverse();
  assert.equal(want.length, 10);
  await waitFor("every notification", () => got.length >= 10);
  await waitFor("every chat message", () => chatMsgs.length >= 3);
  await sleep(300); // a duplicate would come now
  assert.deepEqual(got.map((n) => n.id), want, "notifications: each once, in order");
  assert.deepEqual(chatMsgs.map((m) => m.message_id), [m1, m2, m3].map((m) => m.message_id), "chat: each once, in order");
  sock.close(); chat.close();
  alice.close(); bob.close();
});

test("reconnect backoff is bounded while the server is away", { skip }, async () => {
  const c = await user("erin");
  const maxMs = 300;
  const slow = newClient({ token: c.token, userId: c.userId, backoff: { initialMs: 20, maxMs, factor: 2, jitter: 0.5 } });
  const sock = slow.notifications();
  const retries = collect(sock, "retry");
  await waitFor("socket", () => sock.connected);
  await notifd.stop();
  await sleep(2500);
  await notifd.start();
  await waitFor("reconnected", () => sock.connected);
  const delays = retries.map((r) => r.delay);
  assert.ok(delays.length >= 5, `retries while away: ${delays}`);
  assert.ok(delays.every((d) => d >= 0 && d <= maxMs), `every delay within ${maxMs} ms: ${delays}`);
  assert.ok(delays.slice(0, 4).some((d) => d < maxMs / 2), `starts small: ${delays}`);
  assert.ok(delays.slice(-3).every((d) => d >= maxMs / 2), `then grows to the cap: ${delays}`);
  sock.close();
  slow.close(); c.close();
});
