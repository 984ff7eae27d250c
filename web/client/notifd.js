// @notifd/client: a client of notifd's HTTP and websocket API.
//
// One ES module, no build step and no runtime dependencies.  It runs in
// browsers and in Node 18 or later (global fetch); where there is no
// global WebSocket (Node before 22) pass one, e.g. the `ws` package:
//
//   import { NotifdClient } from "@notifd/client";
//   import WebSocket from "ws";
//   const c = new NotifdClient({ baseUrl: "http://localhost:8080", WebSocket });
//   await c.login("alice", "correct horse");
//   const chat = c.chat("bob");
//   chat.on("message", (m) => console.log(m.sender_id, m.content));
//   await chat.send("hi");
//
// The API it speaks is described in plugins/*/README.md and
// docs/security.md; clients/js/README.md documents the library.
//
// This file is the library's only copy: it lives in web/client/ so that
// notifd's static file server (which serves nothing outside http.static_dir,
// symlinks included) gives it to the web client as /client/notifd.js, and
// the npm package clients/js/ links to it (clients/js/notifd.js).

export const CHAT_V2 = "notifd.chat.v2";

// Close codes after which the token may be what the server refused.
const AUTH_CLOSE_CODES = new Set([1008, 4401, 4403]);
const REFRESH_AHEAD_MS = 60000;  // refresh this long before the expiry
const REFRESH_RETRY_MS = 10000;  // after a refresh that got no answer
const FRESH_MS = 30000;          // a token this young is not refreshed after a refused socket

// A refused call: `status` is the HTTP status (0: the server could not be
// reached), `body` the parsed answer (or null), `retryAfter` seconds from a
// 429's Retry-After (or null).
export class NotifdError extends Error {
  constructor(status, message, body = null, retryAfter = null) {
    super(message);
    this.name = "NotifdError";
    this.status = status;
    this.body = body;
    this.retryAfter = retryAfter;
  }
}

// ------------------------------------------------------------------ utilities

// A minimal event emitter: on(type, fn) returns a function that removes fn.
class Emitter {
  constructor() { this._h = new Map(); }
  on(type, fn) {
    if (!this._h.has(type)) this._h.set(type, new Set());
    this._h.get(type).add(fn);
    return () => this.off(type, fn);
  }
  off(type, fn) { const s = this._h.get(type); if (s) s.delete(fn); }
  once(type, fn) { const off = this.on(type, (...a) => { off(); fn(...a); }); return off; }
  emit(type, ...args) {
    const s = this._h.get(type);
    if (!s) return;
    for (const fn of [...s]) {
      try { fn(...args); } catch (e) { setTimeout(() => { throw e; }); } // a handler's error is not ours
    }
  }
}

// The delay before reconnect attempt `attempt` (0 = the first retry):
// initialMs * factor^attempt capped at maxMs, then "equal jitter": a random
// point in [delay * (1 - jitter), delay].  Never more than maxMs.
export function backoffDelay(attempt, { initialMs = 500, maxMs = 15000, factor = 2, jitter = 0.5 } = {}, random = Math.random) {
  const base = Math.min(maxMs, initialMs * Math.pow(factor, Math.max(0, attempt)));
  const j = Math.min(1, Math.max(0, jitter));
  return Math.round(base * (1 - j * random()));
}

// RFC 3339 to epoch ms.  notifd trims trailing zeros of the fraction
// (".72Z", no fraction at all), so the texts do not sort as strings; some
// engines refuse more than three fractional digits, so the fraction is cut
// to milliseconds first.  NaN when unparseable.
export function parseTime(s) {
  if (typeof s !== "string") return NaN;
  const m = /^(\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d)(?:\.(\d+))?([Zz]|[+-]\d\d:\d\d)$/.exec(s.trim());
  if (!m) return Date.parse(s);
  const frac = ((m[2] || "") + "000").slice(0, 3);
  return Date.parse(m[1].replace(/[t ]/, "T") + "." + frac + m[3].toUpperCase());
}

// SHA-256 (FIPS 180-4) in plain JS, so stream ids can be computed where
// crypto.subtle is missing (a page served over plain http on a LAN address).
const K256 = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2]);
const rotr = (x, n) => (x >>> n) | (x << (32 - n));

export function sha256Hex(bytes) {
  const bitLen = bytes.length * 8;
  const padded = new Uint8Array(((bytes.length + 9 + 63) >> 6) << 6);
  padded.set(bytes);
  padded[bytes.length] = 0x80;
  const view = new DataView(padded.buffer);
  view.setUint32(padded.length - 8, Math.floor(bitLen / 0x100000000));
  view.setUint32(padded.length - 4, bitLen >>> 0);
  const H = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                             0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  const W = new Uint32Array(64);
  for (let off = 0; off < padded.length; off += 64) {
    for (let i = 0; i < 16; i++) W[i] = view.getUint32(off + i * 4);
    for (let i = 16; i < 64; i++) {
      const s0 = rotr(W[i - 15], 7) ^ rotr(W[i - 15], 18) ^ (W[i - 15] >>> 3);
      const s1 = rotr(W[i - 2], 17) ^ rotr(W[i - 2], 19) ^ (W[i - 2] >>> 10);
      W[i] = (W[i - 16] + s0 + W[i - 7] + s1) >>> 0;
    }
    let [a, b, c, d, e, f, g, h] = H;
    for (let i = 0; i < 64; i++) {
      const S1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
      const t1 = (h + S1 + ((e & f) ^ (~e & g)) + K256[i] + W[i]) >>> 0;
      const S0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
      const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
      h = g; g = f; f = e; e = (d + t1) >>> 0; d = c; c = b; b = a; a = (t1 + t2) >>> 0;
    }
    H[0] += a; H[1] += b; H[2] += c; H[3] += d; H[4] += e; H[5] += f; H[6] += g; H[7] += h;
  }
  return Array.from(H, (x) => x.toString(16).padStart(8, "0")).join("");
}

// The contract's stream id (Go ComputeStreamID): the two user ids sorted
// bytewise, concatenated, SHA-256, first 16 hex digits.
export function streamId(a, b) {
  const enc = new TextEncoder();
  const [x, y] = [enc.encode(a), enc.encode(b)];
  const cmp = (p, q) => {
    for (let i = 0; i < Math.min(p.length, q.length); i++) if (p[i] !== q[i]) return p[i] - q[i];
    return p.length - q.length;
  };
  const [lo, hi] = cmp(x, y) <= 0 ? [x, y] : [y, x];
  const joined = new Uint8Array(lo.length + hi.length);
  joined.set(lo);
  joined.set(hi, lo.length);
  return sha256Hex(joined).slice(0, 16);
}

// A random message id ("<prefix>-" + 32 hex digits): a message posted
// twice with the same id is stored once (the server answers 200).
export function newMessageId(prefix = "js") {
  const b = new Uint8Array(16);
  const c = globalThis.crypto;
  if (c && c.getRandomValues) c.getRandomValues(b);
  else for (let i = 0; i < b.length; i++) b[i] = Math.floor(Math.random() * 256); // Node 18 without webcrypto global
  return prefix + "-" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

// Seconds from a Retry-After header (seconds or an HTTP date), or null.
function retryAfterOf(r) {
  const v = r.headers.get("Retry-After");
  if (!v) return null;
  if (/^\s*\d+\s*$/.test(v)) return Number(v);
  const t = Date.parse(v);
  return Number.isFinite(t) ? Math.max(0, Math.ceil((t - Date.now()) / 1000)) : null;
}

const enc = encodeURIComponent;
const query = (params) => {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== undefined && v !== null) q.set(k, String(v));
  const s = q.toString();
  return s ? "?" + s : "";
};

// ------------------------------------------------------------------ sockets

// A websocket that reconnects with exponential backoff and jitter (the
// delay goes back to the first one once a connection has stayed open for
// `stableMs`).  url() is awaited for every connection, so each carries the
// current token.  A connection that never opened (browsers hide the status
// of a refused upgrade) or that was closed with an auth close code asks
// the client for a fresh token before the next try.
//
// `protocol` (optional) is offered as Sec-WebSocket-Protocol.  A server
// that does not know it answers without one, which the WebSocket API
// treats as a failed connection; so until one connection with it opened,
// failures alternate between offering and not offering it, and once a
// connection without it opens it is not offered again by this socket.
//
// Events: "open" (protocol), "frame" (parsed JSON), "close" ({code, reason,
// opened}), "retry" ({attempt, delay}).
export class ReconnectingSocket extends Emitter {
  constructor(client, url, { protocol = null } = {}) {
    super();
    this.client = client;
    this._url = url;
    this.protocol = protocol;
    this.attempt = 0;
    this.stopped = false;
    this.ws = null;
    this.timer = null;
    this._offer = !!protocol;
    this._accepted = false;
    this._refused = false;
    this._stableTimer = null;
    this.connected = false;
    this.negotiated = "";
    client._sockets?.add(this); // client.close() closes it
  }

  start() { if (!this.ws && !this.timer && !this.stopped) this._connect(); return this; }

  async _connect() {
    this.timer = null;
    let url;
    try { url = await this._url(); } catch (e) { return this._scheduleRetry(false, 0); }
    if (this.stopped) return;
    const WS = this.client.WebSocket || globalThis.WebSocket;
    const offered = this._offer && !this._refused;
    let ws;
    try {
      ws = offered ? new WS(url, [this.protocol]) : new WS(url);
    } catch (e) {
      return this._scheduleRetry(false, 0);
    }
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.connected = true;
      if (offered) this._accepted = true;
      else if (this.protocol && !this._accepted) this._refused = true;
      this.negotiated = ws.protocol || "";
      clearTimeout(this._stableTimer);
      const stable = this.client.backoff.stableMs;
      if (!stable) this.attempt = 0;
      else this._stableTimer = setTimeout(() => { this.attempt = 0; }, stable);
      this.emit("open", this.negotiated);
    };
    ws.onmessage = (ev) => {
      let m;
      try { m = JSON.parse(typeof ev.data === "string" ? ev.data : String(ev.data)); } catch (e) { return; }
      this.emit("frame", m);
    };
    ws.onerror = () => {};
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.connected = false;
      clearTimeout(this._stableTimer);
      if (this.stopped) return;
      if (this.protocol && !this._accepted && !opened) this._offer = !offered; // alternate until one opens
      this.emit("close", { code: ev.code, reason: ev.reason || "", opened });
      this._scheduleRetry(opened, ev.code);
    };
  }

  _scheduleRetry(opened, code) {
    if (this.stopped) return;
    const renewing = !opened || AUTH_CLOSE_CODES.has(code) ? this.client._refreshIfStale() : null;
    const delay = code === 1013 && opened ? 0 : backoffDelay(this.attempt, this.client.backoff);
    this.attempt++;
    this.emit("retry", { attempt: this.attempt, delay });
    this.timer = setTimeout(async () => {
      if (renewing) await renewing.catch(() => {});
      if (!this.stopped) this._connect();
    }, delay);
  }

  // Sends `obj` as JSON when the socket is open; false otherwise.
  send(obj) {
    const ws = this.ws;
    if (!ws || ws.readyState !== 1 /* OPEN */) return false;
    ws.send(JSON.stringify(obj));
    return true;
  }

  // Drops the current connection (it reconnects after the backoff).
  reconnect() { if (this.ws) this.ws.close(4000, "reconnect"); }

  close() {
    this.stopped = true;
    this.connected = false;
    this.client._sockets?.delete(this);
    clearTimeout(this.timer);
    clearTimeout(this._stableTimer);
    this.timer = null;
    const ws = this.ws;
    this.ws = null;
    if (ws) { ws.onmessage = ws.onclose = ws.onopen = null; try { ws.close(1000); } catch (e) { /* not open yet */ } }
  }
}

// The chat socket of one conversation (protocol notifd.chat.v2).
//
// Events:
//   "message" (ChatMessage)              live, and the ones recovered after a reconnect
//   "read"    ({user_id, message_id})    a read receipt (the peer's, or your other tabs')
//   "typing"  ({user_id})                the peer is typing
//   "presence"({user_id, online})        the peer's presence (sent at open, then on changes)
//   "open"    (protocol)  "close" ({code, reason, opened})  "reset" (4001: reload the history)
//   "error"   (NotifdError)          the recovery after a reconnect could not read the history
//
// Messages are deduplicated by message_id.  With `recover` (default true)
// each reconnect asks the history for what came after the newest message
// seen minus `recoverMarginMs` (default 60 s: live frames of one stream may
// arrive out of order, so one older than the newest may still be missing),
// following next_before, so nothing sent while the socket was down is
// missed; the first connection recovers nothing (load the history
// yourself after "open" and pass it to note(): subscribe first, history
// second).  Recovered messages come as "message" events, oldest first.
export class ChatSocket extends Emitter {
  constructor(client, peer, { recover = true, recoverMarginMs = 60000, maxRecoverPages = 20, protocol = CHAT_V2, me = null } = {}) {
    super();
    this.client = client;
    this.peer = peer;
    this.me = me || client.userId;
    if (!this.me) throw new Error("chat(): no user id (log in first, or pass { me })");
    this.streamId = streamId(this.me, peer);
    this.recover = recover;
    this.recoverMarginMs = recoverMarginMs;
    this.maxRecoverPages = maxRecoverPages;
    this.seen = new Set();
    this.newest = NaN; // created_at (ms) of the newest message seen
    this._everOpened = false;
    const params = { stream_id: this.streamId, sender_id: this.me, receiver_id: peer };
    this.socket = new ReconnectingSocket(client, () => client.wsUrl("/chat/subscribe-websocket", params), { protocol });
    this.socket.on("open", (p) => this._onOpen(p));
    this.socket.on("frame", (f) => this._onFrame(f));
    this.socket.on("close", (c) => { if (c.code === 4001) this.emit("reset"); this.emit("close", c); });
    this.socket.on("retry", (r) => this.emit("retry", r));
    this.socket.start();
  }

  get connected() { return this.socket.connected; }
  get protocol() { return this.socket.negotiated; }

  // Records a message as seen (the history the app loaded, a message it
  // sent); true when it was new.
  note(m) {
    if (!m || typeof m.message_id !== "string" || this.seen.has(m.message_id)) return false;
    this.seen.add(m.message_id);
    const t = parseTime(m.created_at);
    if (Number.isFinite(t) && !(t <= this.newest)) this.newest = t;
    return true;
  }

  _deliver(m) { if (m && m.stream_id === this.streamId && this.note(m)) this.emit("message", m); }

  async _onOpen(proto) {
    const again = this._everOpened;
    this._everOpened = true;
    this.emit("open", proto);
    if (!again || !this.recover || !Number.isFinite(this.newest)) return;
    try {
      const msgs = [];
      let pages = 0;
      const after = new Date(this.newest - this.recoverMarginMs).toISOString();
      for await (const page of this.client.historyPages(this.peer, { after })) {
        msgs.push(...page.messages);
        if (++pages >= this.maxRecoverPages) break;
      }
      msgs.sort((a, b) => parseTime(a.created_at) - parseTime(b.created_at));
      for (const m of msgs) this._deliver(m);
    } catch (e) {
      this.emit("error", e);
    }
  }

  _onFrame(f) {
    if (!f || typeof f !== "object") return;
    if (this.protocol !== CHAT_V2) { this._deliver(f); return; } // v1: bare messages
    switch (f.type) {
      case "message": this._deliver(f.message); break;
      case "read": this.emit("read", { user_id: f.user_id, message_id: f.message_id }); break;
      case "typing": this.emit("typing", { user_id: f.user_id }); break;
      case "presence": this.emit("presence", { user_id: f.user_id, online: !!f.online }); break;
      default: break; // a future event type
    }
  }

  // Tells the peer you are typing (v2 only; false when not sent).  Send it
  // while the user types, at most every 2 s; the server drops extra ones.
  typing() { return this.protocol === CHAT_V2 && this.socket.send({ type: "typing" }); }

  // Posts a message to this conversation; resolves the stored message.
  async send(content, { messageId } = {}) {
    const m = await this.client.sendMessage(this.peer, content, { messageId, me: this.me });
    return m;
  }

  markRead(messageId) { return this.client.markRead(this.peer, messageId); }

  history(opts) { return this.client.history(this.peer, opts); }

  close() { this.socket.close(); }
}

// The user's notification socket with recovery: it remembers the newest
// notification id seen and reconnects with `since=` that id, so across
// reconnects (and a restart of notifd) nothing is missed and nothing is
// delivered twice.  `since` (option): start from this id (0 replays the
// whole inbox; null/undefined: live only, until the first notification).
//
// Events: "notification" ({id, notification_type, timestamp, payload}),
// "open", "close", "retry".
export class NotificationSocket extends Emitter {
  constructor(client, { since = null, userId = null } = {}) {
    super();
    this.client = client;
    this.userId = userId || client.userId;
    this.lastId = Number.isSafeInteger(since) ? since : null;
    this.socket = new ReconnectingSocket(client, () => {
      const q = { v: "2" };
      if (this.userId) q.user_id = this.userId;
      if (this.lastId !== null) q.since = String(this.lastId);
      return client.wsUrl("/notifications/subscribe", q);
    });
    this.socket.on("open", (p) => this.emit("open", p));
    this.socket.on("frame", (f) => this._onFrame(f));
    this.socket.on("close", (c) => this.emit("close", c));
    this.socket.on("retry", (r) => this.emit("retry", r));
    this.socket.start();
  }

  get connected() { return this.socket.connected; }

  // Ids only grow for one user: anything at or below the newest seen is a
  // duplicate.
  _onFrame(f) {
    if (!f || typeof f !== "object") return;
    const id = Number(f.id);
    if (Number.isSafeInteger(id)) {
      if (this.lastId !== null && id <= this.lastId) return;
      this.lastId = id;
    }
    this.emit("notification", f);
  }

  // Moves the recovery point forward (e.g. to the newest id of an inbox
  // page the app loaded before connecting).
  seen(id) { if (Number.isSafeInteger(id) && (this.lastId === null || id > this.lastId)) this.lastId = id; }

  close() { this.socket.close(); }
}

// ------------------------------------------------------------------ client

// Options:
//   baseUrl        the server ("" or omitted in a page: the page's origin)
//   token, userId, expiresAt (epoch ms)   a session to resume
//   refreshToken   async (client) => ({token, expiresAt?, userId?}) | string | null:
//                  how to get a new token (default: POST /auth/refresh);
//                  null/false means the session cannot be renewed
//   autoRefresh    refresh before expiresAt (default true)
//   onToken        (session) => {}: a new token (store it)
//   onExpired      (message) => {}: the session ended (refresh refused)
//   fetch, WebSocket   implementations (default: the globals)
//   backoff        {initialMs: 500, maxMs: 15000, factor: 2, jitter: 0.5, stableMs: 1000}
export class NotifdClient extends Emitter {
  constructor(opts = {}) {
    super();
    const loc = globalThis.location;
    this.baseUrl = (opts.baseUrl ?? (loc ? loc.origin : "")).replace(/\/+$/, "");
    this.fetchImpl = opts.fetch || globalThis.fetch.bind(globalThis);
    this.WebSocket = opts.WebSocket || null; // null: the global one at each connect
    this.backoff = { initialMs: 500, maxMs: 15000, factor: 2, jitter: 0.5, stableMs: 1000, ...(opts.backoff || {}) };
    this.refreshToken = opts.refreshToken === undefined ? null : opts.refreshToken;
    this.autoRefresh = opts.autoRefresh !== false;
    if (opts.onToken) this.on("token", opts.onToken);
    if (opts.onExpired) this.on("expired", opts.onExpired);
    this.session = null; // {token, userId, expiresAt, at}
    this._timer = null;
    this._inflight = null;
    this._seedUser = null;
    this._sockets = new Set(); // open ReconnectingSockets, for close()
    if (opts.token) this.setSession({ token: opts.token, userId: opts.userId || null, expiresAt: opts.expiresAt });
    else if (opts.userId) this._seedUser = opts.userId;
  }

  // ---- session

  get token() { return this.session ? this.session.token : null; }
  get userId() { return this.session ? this.session.userId : this._seedUser; }

  // Uses a token obtained elsewhere.  expiresAt: epoch ms (optional).
  setSession({ token, userId = null, expiresAt = null, at = Date.now() }) {
    this.session = { token, userId, expiresAt: Number.isFinite(expiresAt) ? expiresAt : null, at };
    this._schedule();
  }

  // Seed mode (auth.mode none, no accounts): a user id alone.
  useUserId(userId) { this.signOut(); this._seedUser = userId; }

  signOut() {
    this.session = null;
    this._seedUser = null;
    clearTimeout(this._timer);
    this._timer = null;
  }

  _accept(body) {
    if (!body || typeof body.token !== "string" || !body.token || typeof body.user_id !== "string") {
      throw new NotifdError(0, "The server's answer was not understood", body);
    }
    const now = Date.now();
    // Counted on this machine's clock from expires_in when given, so a
    // skewed clock does not refresh too late.
    let expiresAt = Number.isFinite(body.expires_in) ? now + body.expires_in * 1000 : Date.parse(body.expires_at);
    if (!Number.isFinite(expiresAt)) expiresAt = now + 5 * 60000;
    this.session = { token: body.token, userId: body.user_id, expiresAt, at: now };
    this._schedule();
    this.emit("token", { ...this.session });
    return this.session;
  }

  // Refresh a minute before the expiry, or halfway there for short tokens.
  _schedule(delay) {
    clearTimeout(this._timer);
    this._timer = null;
    if (!this.session || !this.autoRefresh) return;
    if (delay === undefined) {
      if (this.session.expiresAt === null) return;
      const left = this.session.expiresAt - Date.now();
      delay = Math.max(left - REFRESH_AHEAD_MS, left / 2, 1000);
    }
    this._timer = setTimeout(() => { this._timer = null; this.refresh().catch(() => {}); }, delay);
    if (this._timer && typeof this._timer.unref === "function") this._timer.unref(); // Node: do not hold the process
  }

  _expire(message = "Your session has expired, sign in again") {
    if (!this.session) return;
    this.signOut();
    this.emit("expired", message);
  }

  // ---- HTTP

  // The response of `method path` with the token; a 401 gets one token
  // refresh and one retry, a second 401 ends the session.  Rejects with a
  // NotifdError(0) when the server cannot be reached.
  async raw(method, path, { body, query: q, headers = {}, auth = true } = {}) {
    const url = this.baseUrl + path + query(q);
    const make = () => {
      const h = { ...headers };
      if (body !== undefined) h["Content-Type"] = "application/json";
      if (auth && this.session) h.Authorization = "Bearer " + this.session.token;
      return { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store" };
    };
    const call = async () => {
      try { return await this.fetchImpl(url, make()); } catch (e) {
        throw new NotifdError(0, "Cannot reach the server, try again");
      }
    };
    const had = auth && this.session;
    let r = await call();
    if (r.status !== 401 || !had) return r;
    if (await this.refresh().catch(() => false)) r = await call();
    if (r.status === 401) this._expire();
    return r;
  }

  // JSON of a 2xx answer (null for an empty one); a NotifdError otherwise.
  async request(method, path, opts = {}) {
    const r = await this.raw(method, path, opts);
    const text = await r.text().catch(() => "");
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
    if (r.status >= 200 && r.status < 300) return body;
    const why = body && typeof body.error === "string" && body.error ? body.error : "HTTP " + r.status;
    throw new NotifdError(r.status, why, body, r.status === 429 ? retryAfterOf(r) : null);
  }

  // A websocket URL with the current token (none without accounts).
  wsUrl(path, params = {}) {
    const base = this.baseUrl.replace(/^http/, "ws");
    const p = { ...params };
    if (this.session) p.token = this.session.token;
    return base + path + query(p);
  }

  // ---- auth (docs/security.md)

  async register(userId, password) {
    return this.request("POST", "/auth/register", { body: { user_id: userId, password }, auth: false });
  }

  async login(userId, password) {
    const body = await this.request("POST", "/auth/login", { body: { user_id: userId, password }, auth: false });
    this._seedUser = null;
    return this._accept(body);
  }

  // One refresh at a time: true when a new token came, false otherwise; a
  // refused refresh (401, 403) ends the session ("expired").
  refresh() {
    if (!this.session) return Promise.resolve(false);
    if (this._inflight) return this._inflight;
    const token = this.session.token;
    this._inflight = (async () => {
      try {
        if (this.refreshToken === false) return false;
        if (typeof this.refreshToken === "function") {
          const got = await this.refreshToken(this);
          if (!this.session || this.session.token !== token) return !!this.session;
          if (!got) { this._expire(); return false; }
          const s = typeof got === "string" ? { token: got } : got;
          this.setSession({ token: s.token, userId: s.userId || this.session.userId, expiresAt: s.expiresAt });
          this.emit("token", { ...this.session });
          return true;
        }
        let r;
        try {
          r = await this.fetchImpl(this.baseUrl + "/auth/refresh", { method: "POST", headers: { Authorization: "Bearer " + token } });
        } catch (e) {
          if (this.session && this.session.token === token) this._schedule(REFRESH_RETRY_MS); // unreachable: later
          return false;
        }
        const body = await r.json().catch(() => null);
        if (!this.session || this.session.token !== token) return !!this.session; // replaced meanwhile
        if (r.status === 200) { this._accept(body); return true; }
        if (r.status === 401 || r.status === 403) { this._expire(); return false; }
        const s = retryAfterOf(r);
        this._schedule(s !== null ? s * 1000 : REFRESH_RETRY_MS);
        return false;
      } finally {
        this._inflight = null;
      }
    })();
    return this._inflight;
  }

  // After a refused websocket: the token may be what was refused.
  _refreshIfStale() {
    if (!this.session || Date.now() - this.session.at < FRESH_MS) return Promise.resolve(false);
    return this.refresh();
  }

  // {user_id} of the token; NotifdError 404 on a server without accounts.
  me() { return this.request("GET", "/auth/me"); }

  // What sign-in the server wants: "accounts", "seed" (no accounts:
  // /auth/me is 404) or "offline"; with a session, `valid` tells whether
  // the server still accepts its token (the session is dropped if not).
  async probe() {
    let r, body;
    try {
      const headers = this.session ? { Authorization: "Bearer " + this.session.token } : {};
      r = await this.fetchImpl(this.baseUrl + "/auth/me", { headers, cache: "no-store" });
      body = await r.json().catch(() => null);
    } catch (e) {
      return { mode: "offline" };
    }
    if (r.status === 404) { const had = !!this.session; this.signOut(); return { mode: "seed", valid: false, dropped: had }; }
    if (r.status === 200 && this.session && body && typeof body.user_id === "string" && body.user_id) {
      this.session.userId = body.user_id;
      this._schedule();
      return { mode: "accounts", valid: true };
    }
    if (r.status === 200 || r.status === 401 || r.status === 403) {
      const had = !!this.session;
      this.signOut();
      return { mode: "accounts", valid: false, dropped: had };
    }
    return { mode: "offline" };
  }

  // ---- chat (plugins/chat_persistence, plugins/chat_ws)

  streamId(peer) { return streamId(this.userId, peer); }

  // Stores a message to `peer`; resolves the stored message (server
  // message_id and created_at).  A retry with the same messageId is stored
  // once.
  sendMessage(peer, content, { messageId, me } = {}) {
    const sender = me || this.userId;
    const body = { content, stream_id: streamId(sender, peer), sender_id: sender, receiver_id: peer };
    if (messageId) body.message_id = messageId;
    return this.request("POST", "/chat/messages", { body });
  }

  getMessage(messageId) { return this.request("GET", "/chat/messages/" + enc(messageId)); }

  // One page of the conversation with `peer`, newest first:
  // {messages, nextBefore} (nextBefore null on the last page).
  async history(peer, { before, after, limit } = {}) {
    const q = { peer_id: peer, limit, before, after };
    if (!this.session && this.userId) q.user_id = this.userId;
    const b = await this.request("GET", `/chat/streams/${enc(streamId(this.userId, peer))}/messages`, { query: q });
    return { messages: (b && b.messages) || [], nextBefore: (b && b.next_before) || null };
  }

  // Every page, following next_before: `for await (const page of ...)`.
  async *historyPages(peer, opts = {}) {
    let before = opts.before;
    for (;;) {
      const page = await this.history(peer, { ...opts, before });
      yield page;
      if (!page.nextBefore) return;
      before = page.nextBefore;
    }
  }

  // {conversations: [{stream_id, peer_id, last_message, unread,
  // peer_read_message_id}], nextBefore}, most recent first.
  async conversations({ limit, before } = {}) {
    const q = { limit, before };
    if (!this.session && this.userId) q.user_id = this.userId;
    const b = await this.request("GET", "/chat/conversations", { query: q });
    return { conversations: (b && b.conversations) || [], nextBefore: (b && b.next_before) || null };
  }

  // Marks the conversation read up to and including `messageId`:
  // {stream_id, user_id, message_id, unread}.  The peer gets a "read" event.
  markRead(peer, messageId) {
    const body = { message_id: messageId };
    if (!this.session && this.userId) body.user_id = this.userId;
    return this.request("POST", `/chat/streams/${enc(streamId(this.userId, peer))}/read`, { body });
  }

  // The live conversation with `peer` (a ChatSocket).
  chat(peer, opts) { return new ChatSocket(this, peer, opts); }

  // ---- notifications (plugins/notifications_ws)

  // One inbox page, newest first: {notifications, unread, nextBefore}.
  async inbox({ limit, before } = {}) {
    const b = await this.request("GET", "/notifications", { query: { user_id: this.userId, limit, before } });
    return { notifications: (b && b.notifications) || [], unread: (b && b.unread) || 0, nextBefore: b ? b.next_before ?? null : null };
  }

  // Marks notifications read: an array of ids, or "all".  Resolves {unread}.
  markNotificationsRead(ids) {
    const body = ids === "all" ? { all: true } : { ids: [...ids] };
    return this.request("POST", "/notifications/read", { query: { user_id: this.userId }, body });
  }

  // The live notification socket with recovery (a NotificationSocket).
  notifications(opts) { return new NotificationSocket(this, opts); }

  // ---- preferences

  getPreferences() { return this.request("GET", `/users/${enc(this.userId)}/preferences`); }
  setPreferences(prefs) { return this.request("PUT", `/users/${enc(this.userId)}/preferences`, { body: prefs }); }

  // ---- Web Push (plugins/webpush)

  // Seed mode (no token): the user is the ?user_id= parameter.
  _seedQuery() { return !this.session && this.userId ? { user_id: this.userId } : undefined; }

  async vapidPublicKey() {
    const b = await this.request("GET", "/push/vapid-public-key", { auth: false });
    return b.public_key;
  }

  // sub: a PushSubscription or its toJSON().
  addPushSubscription(sub) {
    const body = typeof sub.toJSON === "function" ? sub.toJSON() : sub;
    return this.request("POST", "/push/subscriptions", { body, query: this._seedQuery() });
  }
  async listPushSubscriptions() {
    const b = await this.request("GET", "/push/subscriptions", { query: this._seedQuery() });
    return (b && b.subscriptions) || [];
  }
  removePushSubscription(endpoint) {
    return this.request("DELETE", "/push/subscriptions", { body: { endpoint }, query: this._seedQuery() });
  }

  // Browser: subscribes `registration` (a ServiceWorkerRegistration) with
  // the server's VAPID key and registers the subscription; resolves it.
  async subscribePush(registration) {
    const key = urlBase64ToBytes(await this.vapidPublicKey());
    let sub = await registration.pushManager.getSubscription();
    if (!sub) sub = await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
    await this.addPushSubscription(sub);
    return sub;
  }

  // Browser: removes the subscription here and at the server.
  async unsubscribePush(registration) {
    const sub = await registration.pushManager.getSubscription();
    if (!sub) return false;
    await this.removePushSubscription(sub.endpoint).catch((e) => { if (e.status !== 404) throw e; });
    await sub.unsubscribe();
    return true;
  }

  // Stops the refresh timer and closes every socket of this client (a
  // socket closed here does not reconnect).
  close() {
    clearTimeout(this._timer);
    this._timer = null;
    for (const s of [...this._sockets]) s.close();
  }
}

// base64url (a VAPID key) to bytes, for applicationServerKey.
export function urlBase64ToBytes(s) {
  const b64 = s.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (s.length % 4)) % 4);
  const bin = atob(b64);
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

export default NotifdClient;
