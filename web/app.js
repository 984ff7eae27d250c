// notifd web chat: history over HTTP, live messages over the chat
// websocket, unread badges over the notifications websocket.  Both sockets
// reconnect with exponential backoff; every (re)connection of the chat
// socket refetches the history it may have missed.
//
// Signing in: with the server's accounts a user id and password (or a new
// account) give a token (session.js), sent with every call and on both
// websocket URLs; without accounts (seed mode) a user id alone.
//
// Everything a peer controls (ids, message text) is put in the page with
// textContent or dataset, never as HTML.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);

  const HISTORY_PAGE = 100;        // messages per history request
  const MAX_CATCHUP_PAGES = 20;    // bound on one catch-up after a reconnect
  const CATCHUP_MARGIN_MS = 60000; // refetch this far before the watermark:
                                   // live frames may arrive out of order
  const BACKOFF_FIRST_MS = 500, BACKOFF_MAX_MS = 15000;
  // Close codes after which the token may be what the server refused.
  const AUTH_CLOSE_CODES = new Set([1008, 4401, 4403]);
  const session = window.notifdSession;

  const state = {
    mode: null,               // "accounts" | "seed" | "offline" (see session.probe)
    me: null,
    peer: null,
    streamId: null,
    seen: new Set(),          // message ids shown in the open conversation
    watermark: null,          // newest created_at (ms) seen by a history fetch
    peers: new Set(),         // conversations in the side list
    unread: new Map(),        // peer -> Set of unread message ids
    chatSocket: null,
    noteSocket: null,
    up: { chat: false, note: false },
    draft: null,              // {text, stream, id}: one id per text, so a retry is idempotent
    sending: false,
  };
  const wsBase = () => (location.protocol === "https:" ? "wss://" : "ws://") + location.host;

  // RFC 3339 to epoch ms.  The server trims trailing zeros of the fraction
  // (".72Z", ".7Z", no fraction at all), so the texts do not sort as
  // strings; some engines also refuse more than three fractional digits,
  // so the fraction is cut to milliseconds first.
  function parseTime(s) {
    if (typeof s !== "string") return NaN;
    const m = /^(\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d)(?:\.(\d+))?([Zz]|[+-]\d\d:\d\d)$/.exec(s.trim());
    if (!m) return Date.parse(s);
    const frac = ((m[2] || "") + "000").slice(0, 3);
    return Date.parse(m[1].replace(/[t ]/, "T") + "." + frac + m[3].toUpperCase());
  }

  function updateStatus() {
    let text = "offline";
    if (state.me) {
      const chatOk = !state.chatSocket || state.up.chat;
      text = chatOk && state.up.note ? "online" : "connecting";
    }
    const el = $("status");
    el.textContent = text;
    el.className = "status " + text;
  }

  function showError(text) {
    const el = $("error");
    el.textContent = text || "";
    el.classList.toggle("hidden", !text);
  }

  // A websocket that reconnects with backoff (0.5 s doubling to 15 s,
  // back to 0.5 s once a connection opens).  url() is called for every
  // connection, so each carries the current token.  A connection that never
  // opened (browsers hide the status of a refused upgrade) or that was
  // closed with an auth close code refreshes the token before the next try;
  // the backoff delay runs meanwhile.
  function resilientSocket(url, h) {
    let ws = null, delay = BACKOFF_FIRST_MS, stopped = false, timer = null;
    function connect() {
      timer = null;
      let opened = false;
      ws = new WebSocket(url());
      ws.onopen = () => { opened = true; delay = BACKOFF_FIRST_MS; h.onOpen(); };
      ws.onmessage = (ev) => {
        let m;
        try { m = JSON.parse(ev.data); } catch (e) { return; /* not JSON */ }
        h.onMessage(m);
      };
      ws.onclose = (ev) => {
        if (stopped) return;
        h.onDown(ev);
        const renewing = !opened || AUTH_CLOSE_CODES.has(ev.code) ? session.refreshIfStale() : null;
        timer = setTimeout(async () => {
          if (renewing) await renewing;
          if (!stopped) connect();
        }, delay);
        delay = Math.min(delay * 2, BACKOFF_MAX_MS);
      };
    }
    connect();
    return {
      close() {
        stopped = true;
        clearTimeout(timer);
        if (ws) { ws.onmessage = ws.onclose = ws.onopen = null; ws.close(1000); }
      },
    };
  }

  function storageKey() { return "notifd.peers." + state.me; }
  function savePeers() {
    try { localStorage.setItem(storageKey(), JSON.stringify([...state.peers])); } catch (e) { /* private mode */ }
  }
  function loadPeers() {
    try {
      const list = JSON.parse(localStorage.getItem(storageKey()) || "[]");
      if (Array.isArray(list)) list.forEach((p) => typeof p === "string" && p && state.peers.add(p));
    } catch (e) { /* ignore */ }
  }

  function renderConversations() {
    const ul = $("conversations");
    ul.textContent = "";
    for (const p of [...state.peers].sort()) {
      const li = document.createElement("li");
      li.dataset.peer = p;
      li.dataset.testid = "conversation";
      li.tabIndex = 0;
      li.setAttribute("role", "button");
      li.className = p === state.peer ? "active" : "";
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = p;
      li.appendChild(name);
      const n = state.unread.has(p) ? state.unread.get(p).size : 0;
      if (n > 0 && p !== state.peer) {
        const b = document.createElement("span");
        b.className = "badge";
        b.dataset.testid = "badge";
        b.title = n + " unread";
        b.textContent = String(n);
        li.appendChild(b);
      }
      li.onclick = () => openConversation(p);
      li.onkeydown = (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); openConversation(p); } };
      ul.appendChild(li);
    }
  }

  function showMessage(m) {
    if (!m || typeof m.message_id !== "string" || !m.message_id) return;
    if (m.stream_id !== state.streamId || state.seen.has(m.message_id)) return;
    state.seen.add(m.message_id);
    const mine = m.sender_id === state.me;
    const t = parseTime(m.created_at);
    const li = document.createElement("li");
    li.className = mine ? "mine" : "";
    li.dataset.testid = "message";
    li.dataset.id = m.message_id;
    li.dataset.ts = isNaN(t) ? "" : String(t);
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = String(m.content);
    const when = document.createElement("time");
    if (!isNaN(t)) when.dateTime = new Date(t).toISOString();
    when.textContent = (mine ? "you" : String(m.sender_id)) + " · " +
      (isNaN(t) ? "" : new Date(t).toLocaleTimeString());
    li.append(text, when);
    // Chronological order by time, not by arrival: history pages and live
    // frames interleave, and live frames may come out of order.  Equal
    // times keep arrival order.
    const list = $("messages");
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    let prev = list.lastElementChild;
    if (!isNaN(t)) {
      while (prev && prev.dataset.ts !== "" && Number(prev.dataset.ts) > t) prev = prev.previousElementSibling;
    }
    list.insertBefore(li, prev ? prev.nextSibling : list.firstChild);
    if (atBottom || mine) list.scrollTop = list.scrollHeight;
  }

  // First call for a conversation: the newest page.  After a reconnect:
  // everything since the watermark (minus a margin), following next_before
  // until the window is exhausted; duplicates are dropped by message id.
  async function loadHistory() {
    const stream = state.streamId, peer = state.peer;
    if (!stream) return;
    const since = state.watermark;
    let before = null, newest = since;
    for (let i = 0; i < MAX_CATCHUP_PAGES; i++) {
      // peer_id: with token auth the server checks the caller is a participant.
      const q = new URLSearchParams({ peer_id: peer, limit: String(HISTORY_PAGE) });
      if (since !== null) q.set("after", new Date(since - CATCHUP_MARGIN_MS).toISOString());
      if (before) q.set("before", before);
      let page, r;
      try {
        r = await session.fetch(`/chat/streams/${encodeURIComponent(stream)}/messages?${q}`);
        page = r.ok ? await r.json() : await r.json().catch(() => null);
      } catch (e) {
        if (stream === state.streamId) showError("Could not load the history (" + e.message + ")");
        return;
      }
      if (!r.ok) {
        if (stream === state.streamId) {
          showError("Could not load the history: " + session.describe(r, page, "read this conversation"));
        }
        return;
      }
      if (stream !== state.streamId) return; // switched conversation meanwhile
      for (const m of page.messages || []) {
        showMessage(m);
        const t = parseTime(m && m.created_at);
        if (!isNaN(t) && (newest === null || t > newest)) newest = t;
      }
      if (since === null || !page.next_before) break;
      before = page.next_before;
    }
    if (stream === state.streamId && newest !== null &&
        (state.watermark === null || newest > state.watermark)) state.watermark = newest;
  }

  // The open conversation (and, without accounts, the user) live in the
  // address, so a reload or a bookmark comes back to the same view; with
  // accounts the user comes from the tab's session instead.
  function rememberInUrl() {
    const q = new URLSearchParams(location.search);
    if (state.me && state.mode === "seed") q.set("me", state.me); else q.delete("me");
    if (state.peer) q.set("peer", state.peer); else q.delete("peer");
    const s = q.toString();
    try { history.replaceState(null, "", location.pathname + (s ? "?" + s : "")); } catch (e) { /* file: */ }
  }

  // A websocket URL with the current token (none without accounts).
  function wsUrl(pathname, params) {
    const q = new URLSearchParams(params);
    const t = session.token();
    if (t) q.set("token", t);
    return wsBase() + pathname + "?" + q;
  }

  function openConversation(peer) {
    peer = String(peer).trim();
    if (!state.me || !peer || peer === state.peer) return;
    if (state.chatSocket) state.chatSocket.close();
    state.peer = peer;
    state.streamId = window.notifdStreamId(state.me, peer);
    state.seen.clear();
    state.watermark = null;
    state.unread.delete(peer);
    state.peers.add(peer);
    savePeers();
    showError("");
    $("messages").textContent = "";
    $("title").textContent = "Chat with " + peer;
    $("text").disabled = $("send").disabled = false;
    renderConversations();
    rememberInUrl();
    const params = { stream_id: state.streamId, sender_id: state.me, receiver_id: peer };
    state.up.chat = false;
    let sock = null;
    sock = resilientSocket(() => wsUrl("/chat/subscribe-websocket", params), {
      onMessage: (m) => showMessage(m),
      // Subscribed first, history second: nothing falls in between.
      onOpen: () => { if (state.chatSocket !== sock) return; state.up.chat = true; updateStatus(); loadHistory(); },
      onDown: () => { if (state.chatSocket !== sock) return; state.up.chat = false; updateStatus(); },
    });
    state.chatSocket = sock;
    updateStatus();
  }

  function newMessageId() {
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    return "web-" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  }

  async function send(ev) {
    ev.preventDefault();
    const content = $("text").value;
    if (!content.trim() || !state.peer || state.sending) return;
    const d = state.draft;
    if (!d || d.text !== content || d.stream !== state.streamId) {
      state.draft = { text: content, stream: state.streamId, id: newMessageId() };
    }
    const draft = state.draft;
    const body = { message_id: draft.id, content, stream_id: state.streamId, sender_id: state.me, receiver_id: state.peer };
    state.sending = true;
    $("send").disabled = true;
    try {
      const r = await session.fetch("/chat/messages", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      });
      const data = await r.json().catch(() => ({}));
      if (r.status === 201 || r.status === 200) {
        if (state.draft === draft) state.draft = null;
        if ($("text").value === content) $("text").value = "";
        showError("");
        showMessage(data); // ignored if the conversation changed meanwhile
      } else if (r.status !== 401 || state.me) {
        showError("Not sent: " + session.describe(r, data, "send messages in this conversation"));
      }
    } catch (e) {
      showError("Not sent (connection problem): press Send to try again");
    } finally {
      state.sending = false;
      $("send").disabled = !state.peer;
    }
  }

  function onNotification(n) {
    if (!n || n.notification_type !== "chat_notification" || !n.payload) return;
    const p = n.payload;
    const from = p.sender_id;
    if (typeof from !== "string" || !from || typeof p.message_id !== "string") return;
    if (p.receiver_id !== state.me) return;
    if (from === state.peer) return; // the open conversation shows it already
    if (!state.unread.has(from)) state.unread.set(from, new Set());
    state.unread.get(from).add(p.message_id); // a redelivered notification counts once
    if (!state.peers.has(from)) { state.peers.add(from); savePeers(); }
    renderConversations();
  }

  // ------------------------------------------------------------ sign-in

  function loginMessage(text) {
    const el = $("login-error");
    el.textContent = text || "";
    el.classList.toggle("hidden", !text);
  }

  // The form for the server's kind of sign-in: with accounts a password
  // and "Create account"; without them (seed mode) a user id alone.
  function setMode(mode) {
    state.mode = mode;
    const accounts = mode !== "seed";
    $("password-row").classList.toggle("hidden", !accounts);
    $("password").required = accounts;
    $("register-btn").classList.toggle("hidden", !accounts);
    $("login").dataset.mode = mode;
  }

  function enterChat(me) {
    if (state.me) return;
    state.me = me;
    loginMessage("");
    $("password").value = "";
    $("login").classList.add("hidden");
    $("chat").classList.remove("hidden");
    $("logout").classList.remove("hidden");
    $("who").textContent = me;
    document.title = "notifd chat — " + me;
    loadPeers();
    renderConversations();
    state.noteSocket = resilientSocket(() => wsUrl("/notifications/subscribe", { user_id: me }), {
      onMessage: onNotification,
      onOpen: () => { state.up.note = true; updateStatus(); },
      onDown: () => { state.up.note = false; updateStatus(); },
    });
    updateStatus();
    const params = new URLSearchParams(location.search);
    if (params.get("peer")) openConversation(params.get("peer"));
    else rememberInUrl();
  }

  // Back to the sign-in form; `why` is shown on it.  The open
  // conversation stays in the address (signing in again reopens it)
  // unless `forget`.
  function leaveChat(why, forget) {
    if (state.chatSocket) state.chatSocket.close();
    if (state.noteSocket) state.noteSocket.close();
    const me = state.me;
    Object.assign(state, {
      me: null, peer: null, streamId: null, watermark: null, chatSocket: null, noteSocket: null,
      up: { chat: false, note: false }, draft: null, sending: false,
    });
    state.seen.clear();
    state.peers.clear();
    state.unread.clear();
    $("messages").textContent = "";
    $("conversations").textContent = "";
    $("title").textContent = "Pick someone to chat with";
    $("text").value = "";
    $("text").disabled = $("send").disabled = true;
    showError("");
    $("chat").classList.add("hidden");
    $("logout").classList.add("hidden");
    $("login").classList.remove("hidden");
    $("who").textContent = "";
    document.title = "notifd chat";
    if (me && !$("me").value) $("me").value = me;
    loginMessage(why);
    if (forget) rememberInUrl();
    updateStatus();
  }

  // Finds out once which sign-in the server wants; asked again while the
  // server cannot be reached.
  let probing = null;
  function probe() {
    if (!probing) {
      probing = session.probe().then((res) => {
        setMode(res.mode);
        if (res.mode === "offline") probing = null;
        return res;
      });
    }
    return probing;
  }

  let busy = false;
  async function submitLogin(register) {
    const me = $("me").value.trim();
    if (!me || state.me || busy) return;
    busy = true;
    $("login-btn").disabled = $("register-btn").disabled = true;
    try {
      const { mode } = await probe();
      if (mode === "seed") { enterChat(me); return; }
      if (mode === "offline") { loginMessage("Cannot reach the server, try again"); return; }
      const password = $("password").value;
      if (!password) { loginMessage("Type your password"); $("password").focus(); return; }
      loginMessage("");
      const user = await (register ? session.register(me, password) : session.login(me, password));
      enterChat(user);
    } catch (e) {
      loginMessage(e.message);
    } finally {
      busy = false;
      $("login-btn").disabled = $("register-btn").disabled = false;
    }
  }

  session.onExpired((why) => leaveChat(why));
  $("login").onsubmit = (e) => { e.preventDefault(); submitLogin(false); };
  $("register-btn").onclick = (e) => {
    e.preventDefault();
    if ($("login").reportValidity()) submitLogin(true);
  };
  $("logout").onclick = () => {
    session.signOut();
    $("me").value = "";
    leaveChat("", true);
  };
  $("peer-form").onsubmit = (e) => { e.preventDefault(); openConversation($("peer").value); };
  $("send-form").onsubmit = send;
  window.notifdParseTime = parseTime; // for tests and the console

  // At load: resume this tab's session (or, in seed mode, the user in the
  // address); while the server cannot be reached, ask again with backoff.
  async function startup(delay) {
    const res = await probe();
    if (state.me) return; // signed in by the form meanwhile
    if (res.mode === "offline") {
      loginMessage("Cannot reach the server, trying again…");
      setTimeout(() => startup(Math.min(delay * 2, BACKOFF_MAX_MS)), delay);
      return;
    }
    loginMessage("");
    if (res.mode === "accounts" && session.active()) enterChat(session.userId());
    else if (res.expired) loginMessage(session.EXPIRED);
    else if (res.mode === "seed") {
      const me = new URLSearchParams(location.search).get("me");
      if (me) { $("me").value = me; enterChat(me); }
    }
  }
  startup(BACKOFF_FIRST_MS * 2);
})();
