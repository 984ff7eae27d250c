// The web client's service worker: a system notification for every Web
// Push message (sent by notifd's webpush plugin when the user has no open
// socket) and for what a hidden tab of the page hands over, and a click on
// it brings the chat back (the open tab, or a new one on the conversation).
//
// The push payload is a notification as the inbox stores it
// ({id, notification_type, timestamp, payload}; plugins/webpush/README.md),
// possibly wrapped as {"notification": {...}}; a chat message's payload is
// the message.  One too big for a push message comes as a stub
// {id, notification_type, truncated: true}.
"use strict";

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (e) => e.waitUntil(self.clients.claim()));

function describe(data) {
  const n = data && typeof data === "object" && data.notification && typeof data.notification === "object"
    ? data.notification : data;
  if (!n || typeof n !== "object") {
    return { title: "notifd", options: { body: typeof data === "string" ? data : "New notification" } };
  }
  const p = n.payload && typeof n.payload === "object" ? n.payload : n;
  const tag = n.id !== undefined ? "notifd-" + n.id : undefined;
  if (n.truncated) { // too big for one push message: the page has the rest
    const chat = n.notification_type === "chat_notification";
    return { title: chat ? "New message" : "New notification", options: { body: "Open notifd chat to read it", tag, data: { url: "./" } } };
  }
  if ((n.notification_type === "chat_notification" || !n.notification_type) &&
      typeof p.sender_id === "string" && p.content !== undefined) {
    return {
      title: "Message from " + p.sender_id,
      options: { body: String(p.content), tag, data: { url: "./?peer=" + encodeURIComponent(p.sender_id) } },
    };
  }
  const type = String(n.notification_type || "notification").replace(/_notification$/, "").replace(/[_-]+/g, " ");
  let body = "";
  for (const k of ["title", "message", "content", "text", "product_name", "status"]) {
    if (typeof p[k] === "string" && p[k]) { body = p[k]; break; }
  }
  if (!body) body = JSON.stringify(n.payload ?? "").slice(0, 200);
  return { title: type.charAt(0).toUpperCase() + type.slice(1), options: { body, tag, data: { url: "./" } } };
}

self.addEventListener("push", (e) => {
  let data = null;
  if (e.data) {
    try { data = e.data.json(); } catch (err) { data = e.data.text(); }
  }
  const { title, options } = describe(data);
  e.waitUntil(self.registration.showNotification(title, options));
});

// The page, open in a hidden tab, hands over a notification that came on
// its socket (no push is sent then): shown the same way.
self.addEventListener("message", (e) => {
  if (!e.data || typeof e.data !== "object" || !e.data.notify) return;
  const { title, options } = describe(e.data.notify);
  e.waitUntil(self.registration.showNotification(title, options));
});

self.addEventListener("notificationclick", (e) => {
  e.notification.close();
  const want = new URL((e.notification.data && e.notification.data.url) || "./", self.registration.scope).href;
  e.waitUntil((async () => {
    const wins = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    const mine = wins.filter((c) => c.url.startsWith(self.registration.scope));
    const exact = mine.find((c) => c.url === want);
    if (exact) return exact.focus();
    if (mine.length && "navigate" in mine[0]) {
      const c = await mine[0].focus();
      return c.navigate(want);
    }
    return self.clients.openWindow(want);
  })());
});
