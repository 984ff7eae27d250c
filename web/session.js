// The signed-in session of the web client (window.notifdSession).
//
// With notifd's built-in accounts (auth.accounts: true) a user signs in
// with POST /auth/login and gets a token.  It is kept in memory and in
// sessionStorage, so a reload keeps the session in this tab and closing
// the tab ends it; it is refreshed with POST /auth/refresh a minute before
// it expires, and sent as `Authorization: Bearer` on HTTP calls (the
// websocket URLs carry it as `?token=`, see app.js).  A call answered 401
// gets one refresh and one retry; when the refresh is refused too, the
// session has expired and the expiry handler (app.js: back to the sign-in
// form) runs.
//
// Without accounts (GET /auth/me answers 404: a server in seed mode,
// auth.mode none) there is no token: a user id alone signs in.
(function (global) {
  "use strict";
  const KEY = "notifd.session";
  const REFRESH_AHEAD_MS = 60000;  // refresh this long before the expiry
  const REFRESH_RETRY_MS = 10000;  // after a refresh that did not get an answer
  const FRESH_MS = 30000;          // a token this young is not refreshed again
  const EXPIRED = "Your session has expired, sign in again";

  let cur = null;       // {token, userId, expiresAt (epoch ms), at (epoch ms obtained)}
  let timer = null;     // the scheduled refresh
  let inflight = null;  // the one refresh under way, shared by its callers
  let onExpired = () => {};

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  function save() {
    try {
      if (cur) sessionStorage.setItem(KEY, JSON.stringify(cur));
      else sessionStorage.removeItem(KEY);
    } catch (e) { /* storage disabled: the session lives in memory only */ }
  }

  function restore() {
    try {
      const s = JSON.parse(sessionStorage.getItem(KEY) || "null");
      if (s && typeof s.token === "string" && s.token && typeof s.userId === "string" && s.userId &&
          Number.isFinite(s.expiresAt) && Number.isFinite(s.at)) return s;
    } catch (e) { /* unreadable: no session */ }
    return null;
  }

  // The token answer of /auth/login and /auth/refresh.  The expiry is
  // counted on this machine's clock from expires_in when given, so a skewed
  // client clock does not refresh too late.
  function accept(body) {
    if (!body || typeof body.token !== "string" || !body.token || typeof body.user_id !== "string") {
      throw new ApiError(0, "The server's answer was not understood");
    }
    const now = Date.now();
    let expiresAt = Number.isFinite(body.expires_in) ? now + body.expires_in * 1000 : Date.parse(body.expires_at);
    if (!Number.isFinite(expiresAt)) expiresAt = now + 5 * 60000;
    cur = { token: body.token, userId: body.user_id, expiresAt, at: now };
    save();
    schedule();
  }

  // Refresh a minute before the expiry, or halfway there for short tokens.
  function schedule(delay) {
    clearTimeout(timer);
    timer = null;
    if (!cur) return;
    if (delay === undefined) {
      const left = cur.expiresAt - Date.now();
      delay = Math.max(left - REFRESH_AHEAD_MS, left / 2, 1000);
    }
    timer = setTimeout(() => { timer = null; refresh(); }, delay);
  }

  function expire(message) {
    if (!cur) return;
    cur = null;
    save();
    schedule();
    onExpired(message || EXPIRED);
  }

  // Seconds from a Retry-After header (seconds or an HTTP date), or null.
  function retryAfter(r) {
    const v = r.headers.get("Retry-After");
    if (!v) return null;
    if (/^\s*\d+\s*$/.test(v)) return Number(v);
    const t = Date.parse(v);
    return Number.isFinite(t) ? Math.max(0, Math.ceil((t - Date.now()) / 1000)) : null;
  }

  // The sentence the page shows for a refused call.  `action` ends "You
  // are not allowed to ...".
  function describe(r, body, action) {
    if (r.status === 401) return EXPIRED;
    if (r.status === 403) return "You are not allowed to " + action;
    if (r.status === 429) {
      const s = retryAfter(r);
      return "Too many attempts, try again " + (s === null ? "later" : "in " + s + " s");
    }
    const why = body && typeof body.error === "string" && body.error ? body.error : "HTTP " + r.status;
    return "The server refused (" + why + ")";
  }

  async function postJson(url, body, headers) {
    let r;
    try {
      r = await fetch(url, {
        method: "POST", headers: { "Content-Type": "application/json", ...(headers || {}) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new ApiError(0, "Cannot reach the server, try again");
    }
    return { r, body: await r.json().catch(() => null) };
  }

  async function login(userId, password) {
    const { r, body } = await postJson("/auth/login", { user_id: userId, password });
    if (r.status === 200) { accept(body); return cur.userId; }
    if (r.status === 401) throw new ApiError(401, "Wrong user id or password");
    throw new ApiError(r.status, describe(r, body, "sign in"));
  }

  // Creates the account, then signs in with it.
  async function register(userId, password) {
    const { r, body } = await postJson("/auth/register", { user_id: userId, password });
    if (r.status === 201 || r.status === 200) return login(userId, password);
    if (r.status === 409) throw new ApiError(409, "That user id is taken, pick another one");
    if (r.status === 403) throw new ApiError(403, "Registration is closed on this server");
    if (r.status === 400) {
      const why = body && typeof body.error === "string" ? body.error : "invalid user id or password";
      throw new ApiError(400, "Account not created: " + why);
    }
    throw new ApiError(r.status, describe(r, body, "create an account"));
  }

  // One refresh at a time.  Resolves true when a new token came, false
  // otherwise; a refused refresh (401, 403) ends the session.
  function refresh() {
    if (!cur) return Promise.resolve(false);
    if (inflight) return inflight;
    const token = cur.token;
    inflight = (async () => {
      try {
        const { r, body } = await postJson("/auth/refresh", undefined, { Authorization: "Bearer " + token });
        if (!cur || cur.token !== token) return !!cur; // signed out or replaced meanwhile
        if (r.status === 200) { accept(body); return true; }
        if (r.status === 401 || r.status === 403) { expire(); return false; }
        const s = retryAfter(r);
        schedule(s !== null ? s * 1000 : REFRESH_RETRY_MS);
        return false;
      } catch (e) {
        if (cur && cur.token === token) schedule(REFRESH_RETRY_MS); // server unreachable: later
        return false;
      } finally {
        inflight = null;
      }
    })();
    return inflight;
  }

  // After a refused websocket: the token may be what was refused.
  function refreshIfStale() {
    if (!cur || Date.now() - cur.at < FRESH_MS) return Promise.resolve(false);
    return refresh();
  }

  function withAuth(opts) {
    if (!cur) return opts;
    return { ...opts, headers: { ...(opts.headers || {}), Authorization: "Bearer " + cur.token } };
  }

  // fetch() with the token; a 401 gets one refresh and one retry, a second
  // 401 ends the session.  Network errors reject as fetch() does.
  async function authFetch(url, opts = {}) {
    const had = cur;
    let r = await fetch(url, withAuth(opts));
    if (r.status !== 401 || !had) return r;
    if (await refresh()) r = await fetch(url, withAuth(opts));
    if (r.status === 401) expire();
    return r;
  }

  // Which sign-in the server wants: "accounts" (a token from /auth/login),
  // "seed" (no accounts: /auth/me is 404) or "offline" (no answer).  A
  // session stored by this tab is resumed when the server still accepts
  // its token; `expired` tells the page that one was refused.
  async function probe() {
    const stored = cur || restore();
    let r, body;
    try {
      const headers = stored ? { Authorization: "Bearer " + stored.token } : {};
      r = await fetch("/auth/me", { headers, cache: "no-store" });
      body = await r.json().catch(() => null);
    } catch (e) {
      return { mode: "offline" };
    }
    if (r.status === 404) { cur = null; save(); return { mode: "seed" }; }
    if (r.status === 200 && stored && body && typeof body.user_id === "string" && body.user_id) {
      cur = { ...stored, userId: body.user_id };
      save();
      schedule();
      return { mode: "accounts" };
    }
    if (r.status === 200 || r.status === 401 || r.status === 403) {
      cur = null;
      save();
      return { mode: "accounts", expired: !!stored };
    }
    return { mode: "offline" };
  }

  // Timers of hidden tabs run late (or not at all while the machine
  // sleeps): a tab that shows again refreshes at once when due.
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && cur && cur.expiresAt - Date.now() < REFRESH_AHEAD_MS) refresh();
  });

  global.notifdSession = {
    EXPIRED,
    probe,
    login,
    register,
    refresh,
    refreshIfStale,
    fetch: authFetch,
    describe,
    signOut() { cur = null; save(); schedule(); },
    active: () => !!cur,
    token: () => (cur ? cur.token : null),
    userId: () => (cur ? cur.userId : null),
    onExpired(fn) { onExpired = fn; },
  };
})(window);
