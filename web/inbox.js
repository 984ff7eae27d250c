// The notification inbox (window.notifdInbox): the notifications
// websocket and the panel behind the bell.
//
// At sign-in the newest page of GET /notifications fills the panel and
// gives the newest id; the socket then subscribes with ?since=<that id>,
// so what arrives in between is replayed by the server, and every
// reconnect asks again from the newest id seen: what was missed while
// the socket was down comes over the socket, oldest first, and nothing is
// fetched again.  Frames are deduplicated by id.
//
// A server without the inbox (GET /notifications is 404: an older
// notifd) hides the bell; the socket then works as before (live frames
// only), which is all the chat badges need.
//
// The socket is the client library's NotificationSocket (it reconnects
// with backoff, remembers the newest id and asks since= it, and drops
// what it has delivered already); the calls are the library's too.
(function (global) {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const util = global.notifdUtil;
  const client = global.notifdClient;
  const PAGE = 20;

  let me = null, sock = null, hooks = null;
  let enabled = null;        // true: the server has an inbox; false: 404; null: not known yet
  let newest = null;         // the newest notification id seen (number)
  let unread = 0;
  let nextBefore = null;
  const items = new Map();   // id -> {n, read}
  let gen = 0;               // bumped by stop(): answers of an older session are dropped

  const label = (type) => String(type || "notification").replace(/_notification$/, "").replace(/[_-]+/g, " ");

  // One line of text for a notification (peer-controlled: set as text).
  function summary(n) {
    const p = n.payload && typeof n.payload === "object" ? n.payload : {};
    if (n.notification_type === "chat_notification" && typeof p.sender_id === "string") {
      return "Message from " + p.sender_id + ": " + String(p.content ?? "");
    }
    for (const k of ["title", "message", "content", "text", "product_name", "status"]) {
      if (typeof p[k] === "string" && p[k]) return label(n.notification_type) + ": " + p[k];
    }
    const json = JSON.stringify(n.payload ?? null);
    return label(n.notification_type) + ": " + (json.length > 120 ? json.slice(0, 117) + "…" : json);
  }

  function renderCount() {
    const c = $("inbox-count");
    c.textContent = String(unread);
    c.classList.toggle("hidden", unread <= 0);
    $("inbox-btn").title = unread + " unread notification" + (unread === 1 ? "" : "s");
  }

  function renderItem(id) {
    const it = items.get(id);
    let li = document.querySelector(`#inbox-list li[data-id="${id}"]`);
    if (!li) {
      li = document.createElement("li");
      li.dataset.id = String(id);
      li.dataset.testid = "notification";
      // Newest first.
      const list = $("inbox-list");
      let next = list.firstElementChild;
      while (next && Number(next.dataset.id) > id) next = next.nextElementSibling;
      list.insertBefore(li, next);
    }
    li.textContent = "";
    li.className = it.read ? "read" : "unread";
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = summary(it.n);
    const when = document.createElement("time");
    const t = util.parseTime(it.n.timestamp);
    if (Number.isFinite(t)) when.dateTime = new Date(t).toISOString();
    when.textContent = util.formatWhen(t);
    li.append(text, when);
    const p = it.n.payload || {};
    if (it.n.notification_type === "chat_notification" && typeof p.sender_id === "string" && p.sender_id !== me) {
      text.classList.add("link");
      text.onclick = () => hooks.openChat(p.sender_id);
    }
    if (!it.read) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "link";
      b.dataset.testid = "mark-read";
      b.textContent = "Mark read";
      b.onclick = () => markRead([id]);
      li.appendChild(b);
    }
  }

  function renderEmpty() {
    $("inbox-empty").classList.toggle("hidden", items.size > 0);
    $("inbox-more").classList.toggle("hidden", !nextBefore);
  }

  // Adds a notification; false when it was there already.
  function add(n, read) {
    const id = Number(n.id);
    if (!Number.isSafeInteger(id) || items.has(id)) return false;
    items.set(id, { n, read: !!read });
    if (newest === null || id > newest) newest = id;
    renderItem(id);
    return true;
  }

  function inboxMessage(text) {
    const el = $("inbox-error");
    el.textContent = text || "";
    el.classList.toggle("hidden", !text);
  }

  // One page of the inbox (the newest, or older than `before`).
  async function fetchPage(before) {
    const g = gen;
    let page;
    try {
      page = await client.inbox({ limit: PAGE, before: before ?? undefined });
    } catch (e) {
      if (g !== gen) return false;
      if (e.status === 404) { enabled = false; $("inbox-btn").classList.add("hidden"); return true; }
      if (enabled) inboxMessage("Could not load the notifications (" + (e.status || "no answer") + ")");
      return false;
    }
    if (g !== gen) return false;
    inboxMessage("");
    enabled = true;
    $("inbox-btn").classList.remove("hidden");
    for (const n of page.notifications) add(n, n.read === true);
    if (sock) sock.seen(newest ?? 0); // the inbox is there: reconnects replay from here
    nextBefore = page.nextBefore;
    if (Number.isFinite(page.unread)) unread = page.unread;
    renderCount();
    renderEmpty();
    return true;
  }

  async function markRead(ids) {
    let ans;
    try {
      ans = await client.markNotificationsRead(ids);
    } catch (e) {
      inboxMessage("Not marked read (" + (e.status || "no answer") + ")");
      return;
    }
    inboxMessage("");
    for (const [id, it] of items) {
      if (!it.read && (ids === "all" || ids.includes(id))) { it.read = true; renderItem(id); }
    }
    if (ans && Number.isFinite(ans.unread)) unread = ans.unread;
    renderCount();
  }

  function onFrame(n) {
    if (!n || typeof n !== "object") return;
    if (n.id !== undefined && n.id !== null) {
      if (items.has(Number(n.id))) return; // replayed and already shown
      if (enabled) {
        add(n, false);
        unread++;
        renderCount();
        renderEmpty();
      } else if (Number.isSafeInteger(Number(n.id)) && (newest === null || Number(n.id) > newest)) {
        newest = Number(n.id);
      }
    }
    hooks.onNotification(n);
    global.notifdSettings.notifyIfHidden(n);
  }

  function connect() {
    const g = gen;
    // v=2: frames carry their inbox id.  Recovery: every connection asks
    // since= the newest id seen (the initial page, then every frame); an
    // empty inbox since=0; a server without one (404) live frames only.
    sock = client.notifications({ userId: me, since: newest ?? (enabled ? 0 : null) });
    sock.on("notification", (n) => { if (g === gen) onFrame(n); });
    sock.on("open", () => { if (g === gen) { hooks.onUp(); if (enabled === null) fetchPage(null); } });
    sock.on("close", () => { if (g === gen) hooks.onDown(); });
  }

  async function start(user, h) {
    me = user;
    hooks = h;
    const g = gen;
    await fetchPage(null);
    if (g === gen) connect();
  }

  function stop() {
    gen++;
    if (sock) sock.close();
    sock = null;
    me = null;
    enabled = null;
    newest = null;
    unread = 0;
    nextBefore = null;
    items.clear();
    $("inbox-list").textContent = "";
    $("inbox").classList.add("hidden");
    $("inbox-btn").classList.add("hidden");
    renderCount();
    inboxMessage("");
  }

  // Chat notifications from `peer` that are shown unread: marked read when
  // their conversation is opened.
  function markChatRead(peer) {
    const ids = [];
    for (const [id, it] of items) {
      const p = it.n.payload || {};
      if (!it.read && it.n.notification_type === "chat_notification" && p.sender_id === peer) ids.push(id);
    }
    if (ids.length) markRead(ids);
  }

  $("inbox-btn").onclick = () => {
    const panel = $("inbox");
    panel.classList.toggle("hidden");
    $("inbox-btn").setAttribute("aria-expanded", String(!panel.classList.contains("hidden")));
  };
  $("inbox-read-all").onclick = () => markRead("all");
  $("inbox-more").onclick = () => { if (nextBefore !== null) fetchPage(nextBefore); };

  global.notifdInbox = { start, stop, markChatRead, enabled: () => enabled === true };
})(window);
