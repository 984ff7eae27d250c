// notifd web chat: history over HTTP, live messages over the chat
// websocket, unread badges over the notifications websocket.  Reconnects
// with exponential backoff and refetches history after every reconnect.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const state = {
    me: null,
    peer: null,
    streamId: null,
    seen: new Set(),          // message ids shown in the open conversation
    unread: new Map(),        // peer -> count
    chatSocket: null,
    noteSocket: null,
  };
  const wsBase = () => (location.protocol === "https:" ? "wss://" : "ws://") + location.host;

  function setStatus(text) {
    const el = $("status");
    el.textContent = text;
    el.className = "status " + text;
  }

  // A websocket that reconnects with backoff (0.5 s doubling to 15 s) and
  // calls onOpen after every (re)connection.
  function resilientSocket(url, onMessage, onOpen) {
    let ws = null, delay = 500, closedByUs = false, timer = null;
    function connect() {
      ws = new WebSocket(url);
      ws.onopen = () => { delay = 500; onOpen && onOpen(); };
      ws.onmessage = (ev) => { try { onMessage(JSON.parse(ev.data)); } catch (e) { /* not JSON */ } };
      ws.onclose = () => {
        if (closedByUs) return;
        onOpen && setStatus("connecting");
        timer = setTimeout(connect, delay);
        delay = Math.min(delay * 2, 15000);
      };
    }
    connect();
    return { close() { closedByUs = true; clearTimeout(timer); if (ws) ws.close(1000); } };
  }

  function renderConversations() {
    const ul = $("conversations");
    ul.textContent = "";
    const peers = new Set([...state.unread.keys()]);
    if (state.peer) peers.add(state.peer);
    for (const p of [...peers].sort()) {
      const li = document.createElement("li");
      li.dataset.peer = p;
      li.dataset.testid = "conversation";
      li.className = p === state.peer ? "active" : "";
      const name = document.createElement("span");
      name.textContent = p;
      li.appendChild(name);
      const n = state.unread.get(p) || 0;
      if (n > 0 && p !== state.peer) {
        const b = document.createElement("span");
        b.className = "badge";
        b.dataset.testid = "badge-" + p;
        b.textContent = String(n);
        li.appendChild(b);
      }
      li.onclick = () => openConversation(p);
      ul.appendChild(li);
    }
  }

  function showMessage(m) {
    if (!m || !m.message_id || state.seen.has(m.message_id)) return;
    state.seen.add(m.message_id);
    const li = document.createElement("li");
    li.className = m.sender_id === state.me ? "mine" : "";
    li.dataset.id = m.message_id;
    li.dataset.createdAt = m.created_at || "";
    const text = document.createElement("span");
    text.textContent = m.content;
    const when = document.createElement("time");
    when.textContent = (m.sender_id === state.me ? "you" : m.sender_id) + " · " +
      (m.created_at ? new Date(m.created_at).toLocaleTimeString() : "");
    li.append(text, when);
    // Keep chronological order even when history and live frames interleave.
    const list = $("messages");
    let before = null;
    for (const other of list.children) {
      if (other.dataset.createdAt > li.dataset.createdAt) { before = other; break; }
    }
    list.insertBefore(li, before);
    list.scrollTop = list.scrollHeight;
  }

  async function loadHistory() {
    if (!state.streamId) return;
    const stream = state.streamId;
    const r = await fetch(`/chat/streams/${encodeURIComponent(stream)}/messages?limit=100`);
    if (!r.ok || stream !== state.streamId) return;
    const page = await r.json();
    (page.messages || []).slice().reverse().forEach(showMessage);
  }

  function openConversation(peer) {
    peer = peer.trim();
    if (!peer || peer === state.peer) return;
    if (state.chatSocket) state.chatSocket.close();
    state.peer = peer;
    state.streamId = window.notifdStreamId(state.me, peer);
    state.seen.clear();
    state.unread.delete(peer);
    $("messages").textContent = "";
    $("title").textContent = "Chat with " + peer;
    $("text").disabled = $("send").disabled = false;
    renderConversations();
    const q = new URLSearchParams({ stream_id: state.streamId, sender_id: state.me, receiver_id: peer });
    state.chatSocket = resilientSocket(wsBase() + "/chat/subscribe-websocket?" + q, (m) => {
      if (m.stream_id === state.streamId) showMessage(m);
    }, () => { setStatus("online"); loadHistory(); });
  }

  async function send(ev) {
    ev.preventDefault();
    const content = $("text").value;
    if (!content.trim() || !state.peer) return;
    const body = { content, stream_id: state.streamId, sender_id: state.me, receiver_id: state.peer };
    const r = await fetch("/chat/messages", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    if (r.status === 201 || r.status === 200) {
      $("text").value = "";
      showMessage(await r.json());
    } else {
      const err = await r.json().catch(() => ({}));
      alert("Not sent: " + (err.error || r.status));
    }
  }

  function signIn() {
    const me = $("me").value.trim();
    if (!me) return;
    state.me = me;
    $("login").classList.add("hidden");
    $("chat").classList.remove("hidden");
    document.title = "notifd chat — " + me;
    setStatus("connecting");
    const q = new URLSearchParams({ user_id: me });
    state.noteSocket = resilientSocket(wsBase() + "/notifications/subscribe?" + q, (n) => {
      if (n.notification_type !== "chat_notification" || !n.payload) return;
      const from = n.payload.sender_id;
      if (from === state.peer) return; // already visible
      state.unread.set(from, (state.unread.get(from) || 0) + 1);
      renderConversations();
    }, () => setStatus("online"));
    const params = new URLSearchParams(location.search);
    if (params.get("peer")) openConversation(params.get("peer"));
  }

  $("login-btn").onclick = signIn;
  $("me").onkeydown = (e) => { if (e.key === "Enter") signIn(); };
  $("peer-form").onsubmit = (e) => { e.preventDefault(); openConversation($("peer").value); };
  $("send-form").onsubmit = send;
  const params = new URLSearchParams(location.search);
  if (params.get("me")) { $("me").value = params.get("me"); signIn(); }
})();
