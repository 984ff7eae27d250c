// notifd web chat: conversations, history and read state over HTTP, live
// messages, read receipts, typing and presence over the chat websocket of
// the open conversation, the notification inbox and chat badges over the
// notifications websocket (inbox.js), push and preferences in the settings
// panel (settings.js).  Both sockets reconnect with exponential backoff;
// a reconnected chat socket fetches only what came after the newest message
// shown, a reconnected notifications socket gets what it missed replayed.
//
// Signing in: with the server's accounts a user id and password (or a new
// account) give a token (session.js), sent with every call and on both
// websocket URLs; without accounts (seed mode) a user id alone.
//
// Every feature of a newer server degrades on an older one: no
// /chat/conversations (404) = the list from this browser's storage and
// badges counted by the page; no read endpoint = no read marking; a chat
// socket without the notifd.chat.v2 subprotocol = plain message frames, no
// "seen", typing or presence.  Sign-in and chatting never depend on them.
//
// Everything a peer controls (ids, message text) is put in the page with
// textContent or dataset, never as HTML.
//
// The sockets and calls are the client library's (client/notifd.js, the
// npm package clients/js/): the chat socket is its ChatSocket (typed
// events, and after a reconnect it fetches what came since the newest
// message it saw, 60 s margin included, deduplicated by message id); the
// notifications socket its NotificationSocket (inbox.js).
import { CHAT_V2, newMessageId } from "./client/notifd.js";

(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const util = window.notifdUtil, inbox = window.notifdInbox, settings = window.notifdSettings;
  const { parseTime, formatWhen } = util;
  const client = window.notifdClient;

  const HISTORY_PAGE = 50;         // messages per history request
  const CONVERSATIONS_PAGE = 50;
  const TYPING_SEND_MS = 2000;     // at most one typing event per 2 s
  const TYPING_SHOW_MS = 5000;     // "is typing" fades this long after the last one
  const { BACKOFF_FIRST_MS, BACKOFF_MAX_MS } = util;
  const session = window.notifdSession;

  const state = {
    mode: null,               // "accounts" | "seed" | "offline" (see session.probe)
    me: null,
    peer: null,
    streamId: null,
    seen: new Set(),          // message ids shown in the open conversation
    historyLoaded: false,     // the newest page of the open conversation was shown
    older: null,              // next_before cursor of "load older", null = none left
    peers: new Set(),         // conversations opened in this browser (storage)
    convs: new Map(),         // peer -> {last: message|null, snapTs, unread, ids: Set}
    serverConvs: null,        // true: /chat/conversations answers; false: 404
    readApi: true,            // false once POST .../read answered 404
    readSent: null,           // the message id last marked read in the open conversation
    peerRead: null,           // the peer's newest read message id (receipts)
    proto: "",                // the open chat socket's subprotocol
    lastTyping: 0,            // when a typing event was last sent
    chatSocket: null,
    up: { chat: false, note: false },
    draft: null,              // {text, stream, id}: one id per text, so a retry is idempotent
    sending: false,
  };

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

  // ------------------------------------------------------ conversations

  function conv(peer) {
    let c = state.convs.get(peer);
    if (!c) {
      c = { last: null, snapTs: null, unread: 0, ids: new Set() };
      state.convs.set(peer, c);
    }
    return c;
  }

  // `m` is the newest message of its conversation when no newer one is known.
  function touchConversation(peer, m) {
    const c = conv(peer);
    const t = parseTime(m.created_at);
    if (!c.last || !(parseTime(c.last.created_at) > t)) c.last = m;
  }

  // Most recent first; conversations without a message (opened here, never
  // written in) after them, by name.
  function sortedPeers() {
    const when = (p) => { const c = state.convs.get(p); return c && c.last ? parseTime(c.last.created_at) : NaN; };
    const all = new Set([...state.peers, ...state.convs.keys()]);
    return [...all].sort((a, b) => {
      const ta = when(a), tb = when(b);
      if (Number.isFinite(ta) && Number.isFinite(tb) && ta !== tb) return tb - ta;
      if (Number.isFinite(ta) !== Number.isFinite(tb)) return Number.isFinite(ta) ? -1 : 1;
      return a < b ? -1 : a > b ? 1 : 0;
    });
  }

  function renderConversations() {
    const ul = $("conversations");
    ul.textContent = "";
    for (const p of sortedPeers()) {
      const c = state.convs.get(p) || { last: null, unread: 0 };
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
      if (c.unread > 0 && p !== state.peer) {
        const b = document.createElement("span");
        b.className = "badge";
        b.dataset.testid = "badge";
        b.title = c.unread + " unread";
        b.textContent = String(c.unread);
        li.appendChild(b);
      }
      if (c.last) {
        const pre = document.createElement("span");
        pre.className = "preview";
        pre.dataset.testid = "preview";
        pre.textContent = (c.last.sender_id === state.me ? "you: " : "") + String(c.last.content ?? "");
        const when = document.createElement("time");
        const t = parseTime(c.last.created_at);
        if (Number.isFinite(t)) when.dateTime = new Date(t).toISOString();
        when.textContent = formatWhen(t);
        li.append(pre, when);
      }
      li.onclick = () => openConversation(p);
      li.onkeydown = (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); openConversation(p); } };
      ul.appendChild(li);
    }
  }

  // The server's conversation list (previews and unread counts), merged
  // with the conversations opened in this browser.  A 404 (older server)
  // keeps the list from storage and the badges the page counts itself.
  async function loadConversations() {
    const me = state.me;
    let list;
    try {
      list = (await client.conversations({ limit: CONVERSATIONS_PAGE })).conversations;
    } catch (e) {
      if (state.me === me && e.status === 404) state.serverConvs = false;
      return; // otherwise kept as it is; next reconnect
    }
    if (state.me !== me) return;
    state.serverConvs = true;
    const fresh = new Map();
    for (const x of list) {
      if (!x || typeof x.peer_id !== "string" || !x.peer_id) continue;
      const last = x.last_message && typeof x.last_message === "object" ? x.last_message : null;
      const old = state.convs.get(x.peer_id);
      const c = { last, snapTs: last ? parseTime(last.created_at) : null, unread: Number(x.unread) || 0, ids: new Set(),
                  peerRead: typeof x.peer_read_message_id === "string" ? x.peer_read_message_id : null };
      // A newer message the page has already shown stays the preview.
      if (old && old.last && last && parseTime(old.last.created_at) > c.snapTs) c.last = old.last;
      if (x.peer_id === state.peer && document.visibilityState === "visible") c.unread = 0;
      // How far the peer has read, from the server: "Seen" after a reload
      // (a live receipt that came first is newer and stays).
      if (x.peer_id === state.peer && !state.peerRead && c.peerRead) { state.peerRead = c.peerRead; renderSeen(); }
      fresh.set(x.peer_id, c);
    }
    for (const [p, c] of state.convs) if (!fresh.has(p)) fresh.set(p, c);
    state.convs = fresh;
    renderConversations();
  }

  // ------------------------------------------------------ messages

  // `older`: the message is older than the ones shown with the same time
  // (a "load older" page); otherwise newer (history pages are shown oldest
  // first, live frames as they come).
  function showMessage(m, older) {
    if (!m || typeof m.message_id !== "string" || !m.message_id) return false;
    if (m.stream_id !== state.streamId || state.seen.has(m.message_id)) return false;
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
    if (!isNaN(t)) {
      when.dateTime = new Date(t).toISOString();
      when.title = new Date(t).toLocaleString();
    }
    when.textContent = (mine ? "you" : String(m.sender_id)) + " · " + formatWhen(t);
    li.append(text, when);
    // Chronological order by time, not by arrival: history pages and live
    // frames interleave, and live frames may come out of order.  Equal
    // times (several messages in one millisecond) keep the server's order.
    const list = $("messages");
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    let prev = list.lastElementChild;
    if (!isNaN(t)) {
      while (prev && prev.dataset.ts !== "" &&
             (Number(prev.dataset.ts) > t || (older && Number(prev.dataset.ts) === t))) prev = prev.previousElementSibling;
    }
    list.insertBefore(li, prev ? prev.nextSibling : list.firstChild);
    if (atBottom || mine) list.scrollTop = list.scrollHeight;
    return true;
  }

  // A message of the open conversation from the socket or the send answer.
  function liveMessage(m) {
    if (state.chatSocket && m && m.stream_id === state.streamId) state.chatSocket.note(m);
    if (!showMessage(m)) return;
    touchConversation(state.peer, m);
    renderConversations();
    if (m.sender_id === state.peer) { showTyping(false); markRead(); }
    renderSeen();
  }

  // "Seen" under the newest of my messages the peer has read: the last of
  // mine at or before the message the peer's receipt names.
  function renderSeen() {
    for (const el of document.querySelectorAll("#messages .seen")) el.remove();
    if (!state.peerRead) return;
    const items = [...document.querySelectorAll("#messages li")];
    const at = items.findIndex((li) => li.dataset.id === state.peerRead);
    if (at < 0) return;
    for (let i = at; i >= 0; i--) {
      if (!items[i].classList.contains("mine")) continue;
      const s = document.createElement("span");
      s.className = "seen";
      s.dataset.testid = "seen";
      s.textContent = "Seen";
      items[i].appendChild(s);
      return;
    }
  }

  // Tells the server the open conversation is read up to its newest
  // message from the peer (while the page is visible); the peer gets a
  // receipt.
  let marking = false;
  async function markRead() {
    if (!state.readApi || marking || document.visibilityState !== "visible" || !state.streamId) return;
    const theirs = [...document.querySelectorAll("#messages li:not(.mine)")];
    const newest = theirs.length ? theirs[theirs.length - 1].dataset.id : null;
    if (!newest || newest === state.readSent) return;
    const stream = state.streamId, peer = state.peer;
    marking = true;
    let status = 0, body = null;
    try {
      body = await client.markRead(peer, newest);
      status = 200;
    } catch (e) {
      status = e.status;
      body = e.body;
    }
    marking = false;
    if (status === 404 && !(body && /message/i.test(String(body.error || "")))) { state.readApi = false; return; }
    if (stream !== state.streamId) return;
    if (status === 200) {
      state.readSent = newest;
      const c = conv(peer);
      c.unread = body && Number.isFinite(body.unread) ? body.unread : 0;
      c.ids.clear();
      renderConversations();
      markRead(); // a newer one may have come meanwhile
    }
  }

  function showTyping(on) {
    clearTimeout(showTyping.timer);
    const el = $("typing");
    el.textContent = on ? state.peer + " is typing…" : "";
    el.classList.toggle("hidden", !on);
    if (on) showTyping.timer = setTimeout(() => showTyping(false), TYPING_SHOW_MS);
  }

  // online: true/false, null = not known (socket down, or no v2).
  function showPresence(online) {
    const el = $("presence");
    el.classList.toggle("hidden", !state.peer || state.proto !== CHAT_V2);
    el.className = el.className.replace(/\b(online|offline|unknown)\b/g, "").trim() + " " +
      (online === true ? "online" : online === false ? "offline" : "unknown");
    el.title = online === true ? state.peer + " is online" : online === false ? state.peer + " is offline" : "";
    el.dataset.state = online === true ? "online" : online === false ? "offline" : "unknown";
  }

  function onInput() {
    if (state.proto !== CHAT_V2 || !state.chatSocket || !$("text").value) return;
    const now = Date.now();
    if (now - state.lastTyping < TYPING_SEND_MS) return;
    if (state.chatSocket.typing()) state.lastTyping = now;
  }

  // One history page of the open conversation: {page: {messages,
  // nextBefore}} or {error}.
  async function historyPage(peer, params) {
    try {
      return { page: await client.history(peer, { limit: HISTORY_PAGE, ...params }) };
    } catch (e) {
      if (!e.status) return { error: "Could not load the history (" + e.message + ")" };
      return { error: "Could not load the history: " + session.describe(e, "read this conversation") };
    }
  }

  // The newest page of the open conversation (older ones by "load older").
  // What comes after it while the socket is down is the chat socket's
  // recovery; this runs again only while nothing has been shown.
  async function loadHistory() {
    const stream = state.streamId, peer = state.peer, sock = state.chatSocket;
    if (!stream) return;
    const { page, error } = await historyPage(peer, {});
    if (stream !== state.streamId) return; // switched conversation meanwhile
    if (error) { showError(error); return; }
    for (const m of [...page.messages].reverse()) { // newest first: shown oldest first
      if (sock) sock.note(m);
      showMessage(m, false);
    }
    state.historyLoaded = true;
    state.older = page.nextBefore;
    if (page.messages[0]) touchConversation(peer, page.messages[0]);
    $("older").classList.toggle("hidden", !state.older);
    renderSeen();
    renderConversations();
    markRead();
  }

  // "Load older": the page before the oldest one shown, keeping the view
  // where it was.
  async function loadOlder() {
    const stream = state.streamId, peer = state.peer, cursor = state.older, sock = state.chatSocket;
    if (!cursor) return;
    $("older").disabled = true;
    const { page, error } = await historyPage(peer, { before: cursor });
    $("older").disabled = false;
    if (stream !== state.streamId) return;
    if (error) { showError(error); return; }
    const list = $("messages");
    const fromBottom = list.scrollHeight - list.scrollTop;
    for (const m of page.messages) { // newest first, each before the ones shown
      if (sock) sock.note(m);
      showMessage(m, true);
    }
    list.scrollTop = list.scrollHeight - fromBottom;
    state.older = page.nextBefore;
    $("older").classList.toggle("hidden", !state.older);
    renderSeen();
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

  function openConversation(peer) {
    peer = String(peer).trim();
    if (!state.me || !peer || peer === state.peer) return;
    if (state.chatSocket) state.chatSocket.close();
    Object.assign(state, {
      peer, streamId: window.notifdStreamId(state.me, peer), historyLoaded: false, older: null,
      readSent: null, peerRead: null, proto: "", lastTyping: 0,
    });
    state.seen.clear();
    const c = conv(peer);
    state.peerRead = c.peerRead || null;
    c.unread = 0;
    c.ids.clear();
    state.peers.add(peer);
    savePeers();
    showError("");
    showTyping(false);
    showPresence(null);
    $("messages").textContent = "";
    $("older").classList.add("hidden");
    $("title").textContent = "Chat with " + peer;
    $("text").disabled = $("send").disabled = false;
    renderConversations();
    rememberInUrl();
    inbox.markChatRead(peer);
    state.up.chat = false;
    const sock = client.chat(peer, { me: state.me });
    const mine = (fn) => (...a) => { if (state.chatSocket === sock) fn(...a); };
    // Live messages, and after a reconnect the ones recovered from the history.
    sock.on("message", mine((m) => liveMessage(m)));
    sock.on("typing", mine((t) => { if (t.user_id === state.peer) showTyping(true); }));
    sock.on("presence", mine((p) => { if (p.user_id === state.peer) showPresence(p.online); }));
    sock.on("read", mine((r) => {
      if (typeof r.message_id !== "string") return;
      if (r.user_id === state.peer) { state.peerRead = conv(state.peer).peerRead = r.message_id; renderSeen(); }
      else if (r.user_id === state.me) { conv(state.peer).unread = 0; renderConversations(); } // another tab of mine
    }));
    // Subscribed first, history second: nothing falls in between.
    sock.on("open", mine((proto) => {
      state.up.chat = true;
      state.proto = proto;
      showPresence(null);
      updateStatus();
      if (!state.historyLoaded || !Number.isFinite(sock.newest)) loadHistory();
      else markRead();
    }));
    // The recovery after a reconnect could not read the history.
    sock.on("error", mine((e) => showError(!e.status ? "Could not load the history (" + e.message + ")"
      : "Could not load the history: " + session.describe(e, "read this conversation"))));
    sock.on("close", mine(() => {
      state.up.chat = false;
      showPresence(null);
      showTyping(false);
      updateStatus();
    }));
    state.chatSocket = sock;
    updateStatus();
  }

  async function send(ev) {
    ev.preventDefault();
    const content = $("text").value;
    if (!content.trim() || !state.peer || state.sending) return;
    const d = state.draft;
    if (!d || d.text !== content || d.stream !== state.streamId) {
      state.draft = { text: content, stream: state.streamId, id: newMessageId("web") };
    }
    const draft = state.draft;
    state.sending = true;
    $("send").disabled = true;
    try {
      const data = await client.sendMessage(state.peer, content, { messageId: draft.id, me: state.me });
      if (state.draft === draft) state.draft = null;
      if ($("text").value === content) $("text").value = "";
      showError("");
      liveMessage(data); // ignored if the conversation changed meanwhile
    } catch (e) {
      if (!e.status) showError("Not sent (connection problem): press Send to try again");
      else if (e.status !== 401 || state.me) showError("Not sent: " + session.describe(e, "send messages in this conversation"));
    } finally {
      state.sending = false;
      $("send").disabled = !state.peer;
    }
  }

  // A chat notification raises the badge of a closed conversation, once
  // per message, and only for messages newer than the server's count
  // covers (a replayed notification is in that count already).
  function onNotification(n) {
    if (!n || n.notification_type !== "chat_notification" || !n.payload) return;
    const p = n.payload;
    const from = p.sender_id;
    if (typeof from !== "string" || !from || typeof p.message_id !== "string") return;
    if (p.receiver_id !== state.me) return;
    const c = conv(from);
    touchConversation(from, p);
    const t = parseTime(p.created_at);
    const counted = c.snapTs !== null && (!(t > c.snapTs) || (c.last && c.last.message_id === p.message_id && t === c.snapTs));
    if (from !== state.peer && !counted && !c.ids.has(p.message_id)) {
      c.ids.add(p.message_id);
      c.unread++;
    }
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
    loadConversations();
    let noteDropped = false;
    inbox.start(me, {
      onNotification,
      onUp: () => {
        state.up.note = true;
        updateStatus();
        // Without the inbox's replay, missed chat notifications are not
        // resent: the server's counts are fetched again instead.
        if (noteDropped && !inbox.enabled() && state.serverConvs) loadConversations();
      },
      onDown: () => { noteDropped = true; state.up.note = false; updateStatus(); },
      openChat: openConversation,
    });
    settings.start(me);
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
    inbox.stop();
    settings.stop();
    const me = state.me;
    Object.assign(state, {
      me: null, peer: null, streamId: null, historyLoaded: false, older: null, chatSocket: null,
      up: { chat: false, note: false }, draft: null, sending: false, convs: new Map(), serverConvs: null,
      readApi: true, readSent: null, peerRead: null, proto: "",
    });
    state.seen.clear();
    state.peers.clear();
    showTyping(false);
    showPresence(null);
    $("older").classList.add("hidden");
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
      if (mode === "seed") { session.useUserId(me); enterChat(me); return; }
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
    settings.stop(true); // its DELETE of the push subscription still carries the token
    session.signOut();
    $("me").value = "";
    leaveChat("", true);
  };
  $("peer-form").onsubmit = (e) => { e.preventDefault(); openConversation($("peer").value); };
  $("send-form").onsubmit = send;
  $("text").addEventListener("input", onInput);
  $("older").onclick = loadOlder;
  // Back to the page: what arrived meanwhile is read now.
  document.addEventListener("visibilitychange", () => { if (document.visibilityState === "visible") markRead(); });
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
      if (me) { $("me").value = me; session.useUserId(me); enterChat(me); }
    }
  }
  startup(BACKOFF_FIRST_MS * 2);
})();
