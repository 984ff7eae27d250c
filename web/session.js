// The signed-in session of the web client (window.notifdSession), on the
// client library (client/notifd.js, the npm package clients/js/).
//
// With notifd's built-in accounts (auth.accounts: true) a user signs in
// with POST /auth/login and gets a token.  The library keeps it, refreshes
// it with POST /auth/refresh a minute before it expires, sends it as
// `Authorization: Bearer` on HTTP calls and as `?token=` on websocket URLs,
// and gives a call answered 401 one refresh and one retry; when the
// refresh is refused too, the session has expired and the expiry handler
// (app.js: back to the sign-in form) runs.  This module keeps the session
// in sessionStorage, so a reload keeps it in this tab and closing the tab
// ends it, and turns the library's errors into the page's sentences.
//
// Without accounts (GET /auth/me answers 404: a server in seed mode,
// auth.mode none) there is no token: a user id alone signs in.
import { NotifdClient } from "./client/notifd.js";

const KEY = "notifd.session";
const REFRESH_AHEAD_MS = 60000;
const EXPIRED = "Your session has expired, sign in again";

// Reconnects: 0.5 s doubling to 15 s, back to 0.5 s as soon as a socket
// opens, without jitter (the browser tests step through these delays).
const client = new NotifdClient({
  baseUrl: location.origin,
  backoff: { initialMs: 500, maxMs: 15000, factor: 2, jitter: 0, stableMs: 0 },
});
let onExpired = () => {};

function save() {
  try {
    const s = client.session;
    if (s && s.userId) sessionStorage.setItem(KEY, JSON.stringify(s));
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

client.on("token", save);
client.on("expired", (message) => { save(); onExpired(message || EXPIRED); });

// The sentence the page shows for a refused call (a NotifdError).
// `action` ends "You are not allowed to ...".
function describe(e, action) {
  if (!e || !e.status) return "Cannot reach the server, try again";
  if (e.status === 401) return EXPIRED;
  if (e.status === 403) return "You are not allowed to " + action;
  if (e.status === 429) {
    return "Too many attempts, try again " + (e.retryAfter === null ? "later" : "in " + e.retryAfter + " s");
  }
  const why = e.body && typeof e.body.error === "string" && e.body.error ? e.body.error : "HTTP " + e.status;
  return "The server refused (" + why + ")";
}

class SignInError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function login(userId, password) {
  try {
    return (await client.login(userId, password)).userId;
  } catch (e) {
    if (e.status === 401) throw new SignInError(401, "Wrong user id or password");
    throw new SignInError(e.status, describe(e, "sign in"));
  }
}

// Creates the account, then signs in with it.
async function register(userId, password) {
  try {
    await client.register(userId, password);
  } catch (e) {
    if (e.status === 409) throw new SignInError(409, "That user id is taken, pick another one");
    if (e.status === 403) throw new SignInError(403, "Registration is closed on this server");
    if (e.status === 400) {
      const why = e.body && typeof e.body.error === "string" ? e.body.error : "invalid user id or password";
      throw new SignInError(400, "Account not created: " + why);
    }
    throw new SignInError(e.status, describe(e, "create an account"));
  }
  return login(userId, password);
}

// Which sign-in the server wants: "accounts", "seed" or "offline".  A
// session stored by this tab is resumed when the server still accepts its
// token; `expired` tells the page that one was refused.
async function probe() {
  const stored = client.session ? null : restore();
  if (stored) client.setSession(stored);
  const res = await client.probe();
  if (res.mode !== "offline") save();
  return { mode: res.mode, expired: !!res.dropped && res.mode === "accounts" };
}

// Timers of hidden tabs run late (or not at all while the machine sleeps):
// a tab that shows again refreshes at once when due.
document.addEventListener("visibilitychange", () => {
  const s = client.session;
  if (document.visibilityState === "visible" && s && s.expiresAt !== null &&
      s.expiresAt - Date.now() < REFRESH_AHEAD_MS) client.refresh();
});

window.notifdClient = client;
window.notifdSession = {
  EXPIRED,
  client,
  probe,
  login,
  register,
  describe,
  // Seed mode: the user id alone, no token.
  useUserId(userId) { client.useUserId(userId); },
  signOut() { client.signOut(); save(); },
  active: () => !!client.session,
  token: () => client.token,
  userId: () => client.userId,
  onExpired(fn) { onExpired = fn; },
};
