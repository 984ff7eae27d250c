// The settings panel (window.notifdSettings): "Notify me when offline"
// (a service worker and a Web Push subscription) and the user's
// notification preferences.
//
// The service worker (sw.js) is registered at load; it shows a system
// notification for every push message and brings the page back on a
// click.  Permission is asked only when the user turns the toggle on (a
// user gesture, as browsers require).  A server without Web Push
// (/push/vapid-public-key is 404) or without preferences
// (/users/{id}/preferences is 404) gets the part greyed out with a reason,
// and a browser without a push service (headless browsers, some privacy
// settings) says so; none of this touches sign-in or chatting.
//
// The calls are the client library's (window.notifdClient, session.js).
import { urlBase64ToBytes } from "./client/notifd.js";

(function (global) {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const client = global.notifdClient;
  // A library call as {status, body, error}: status 200 when it succeeded,
  // the refused status (0: no answer) otherwise.
  const attempt = (p) => p.then((body) => ({ status: 200, body, error: null }),
    (e) => ({ status: e.status || 0, body: e.body ?? null, error: e }));
  const CHANNELS = ["websocket", "push", "email"];

  let me = null;
  let registration = null;  // the service worker's, once registered
  let endpoint = null;      // this browser's push endpoint known to the server
  let prefs = null;         // the preferences as the server sent them, edited in place
  let gen = 0;

  function pushStatus(text, bad) {
    const el = $("push-status");
    el.textContent = text;
    el.classList.toggle("error", !!bad);
  }
  function prefsStatus(text, bad) {
    const el = $("prefs-status");
    el.textContent = text;
    el.classList.toggle("error", !!bad);
  }

  // The service worker, registered once per page.
  let registering = null;
  function serviceWorker() {
    if (!("serviceWorker" in navigator)) return Promise.resolve(null);
    if (!registering) {
      registering = navigator.serviceWorker.register("sw.js", { scope: "./" })
        .then((r) => { registration = r; return r; })
        .catch(() => null);
    }
    return registering;
  }

  async function vapidKey() {
    const { status, body } = await attempt(client.vapidPublicKey());
    if (status === 404) return { missing: true };
    if (status !== 200 || typeof body !== "string" || !body) {
      return { error: "the server did not give its push key (" + (status || "no answer") + ")" };
    }
    return { key: body };
  }

  // The toggle's state at sign-in.
  async function initPush() {
    const g = gen;
    const toggle = $("push-toggle");
    toggle.checked = false;
    toggle.disabled = true;
    const reg = await serviceWorker();
    if (g !== gen) return;
    if (!reg || !("PushManager" in global) || !("Notification" in global)) {
      pushStatus("This browser cannot show notifications while the page is closed");
      return;
    }
    const k = await vapidKey();
    if (g !== gen) return;
    if (k.missing) { pushStatus("This server does not send push notifications"); return; }
    toggle.disabled = false;
    const sub = await reg.pushManager.getSubscription().catch(() => null);
    if (g !== gen) return;
    if (sub && Notification.permission === "granted") {
      // Tell the server again: it may have dropped the subscription, or it
      // may belong to the user signed in before in this browser.
      const { status } = await attempt(client.addPushSubscription(sub));
      if (g !== gen) return;
      if (status === 200) {
        endpoint = sub.endpoint;
        toggle.checked = true;
        pushStatus("On: you are notified when this page is closed");
        return;
      }
    }
    pushStatus(Notification.permission === "denied"
      ? "Notifications are blocked for this site (allow them in the browser's site settings)" : "Off");
  }

  async function enablePush() {
    const g = gen;
    const toggle = $("push-toggle");
    const fail = (text) => { if (g === gen) { toggle.checked = false; pushStatus(text, true); } };
    toggle.disabled = true;
    try {
      pushStatus("Asking for permission…");
      const permission = await Notification.requestPermission();
      if (permission !== "granted") {
        fail("Notifications are blocked for this site (allow them in the browser's site settings)");
        return;
      }
      const reg = await serviceWorker();
      const k = await vapidKey();
      if (!reg) { fail("The service worker could not be registered"); return; }
      if (!k.key) { fail(k.missing ? "This server does not send push notifications" : "Not turned on: " + k.error); return; }
      let sub;
      try {
        sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: urlBase64ToBytes(k.key) });
      } catch (e) {
        // Private windows and browsers without a push service refuse here.
        fail("This browser cannot receive push messages here (" + (e.message || e.name) +
          "): you are notified only while this page is open");
        return;
      }
      if (g !== gen) return;
      const { status, error } = await attempt(client.addPushSubscription(sub));
      if (status !== 200) {
        await sub.unsubscribe().catch(() => {});
        fail("Not turned on: " + (status ? global.notifdSession.describe(error, "register for push") : "cannot reach the server"));
        return;
      }
      endpoint = sub.endpoint;
      if (g === gen) pushStatus("On: you are notified when this page is closed");
    } finally {
      if (g === gen) toggle.disabled = false;
    }
  }

  async function disablePush() {
    const toggle = $("push-toggle");
    toggle.disabled = true;
    const reg = await serviceWorker();
    const sub = reg ? await reg.pushManager.getSubscription().catch(() => null) : null;
    const ep = endpoint || (sub && sub.endpoint);
    if (ep) await attempt(client.removePushSubscription(ep));
    if (sub) await sub.unsubscribe().catch(() => {});
    endpoint = null;
    toggle.disabled = false;
    pushStatus("Off");
  }

  // ------------------------------------------------------ preferences

  // Preferences ({"channels": {"<type>": {"websocket","push","email"}},
  // "quiet_hours": {start, end, tz} | null}): one row for "default" and one
  // per notification type; a type without its own entry shows what it
  // inherits from "default" and gets one when a box is changed.  Keys this
  // page does not know are kept as they came.
  const TYPES = ["default", "chat", "purchase", "payment-reminder", "shipping-update"];
  const QUIET_DEFAULT = { start: "22:00", end: "07:00", tz: "UTC" };

  function renderPrefs() {
    const box = $("prefs-channels");
    box.textContent = "";
    if (!prefs.channels || typeof prefs.channels !== "object") prefs.channels = {};
    const channels = prefs.channels;
    const def = channels.default && typeof channels.default === "object" ? channels.default : {};
    const types = [...TYPES, ...Object.keys(channels).filter((k) => !TYPES.includes(k)).sort()];
    for (const type of types) {
      const row = document.createElement("div");
      row.className = "pref-row";
      row.dataset.type = type;
      const name = document.createElement("span");
      name.className = "pref-type";
      name.textContent = type === "default" ? "all (default)" : type.replace(/_notification$/, "").replace(/[_-]+/g, " ");
      row.appendChild(name);
      for (const ch of CHANNELS) {
        const own = channels[type] && typeof channels[type] === "object" ? channels[type] : null;
        const l = document.createElement("label");
        l.className = "inline";
        const cb = document.createElement("input");
        cb.type = "checkbox";
        cb.dataset.channel = ch;
        cb.checked = own && typeof own[ch] === "boolean" ? own[ch] : typeof def[ch] === "boolean" ? def[ch] : true;
        cb.onchange = () => {
          channels[type] = { ...(channels[type] && typeof channels[type] === "object" ? channels[type] : {}), [ch]: cb.checked };
          if (type === "default") renderPrefs(); // the inherited boxes follow
        };
        l.append(cb, " " + ch);
        row.appendChild(l);
      }
      box.appendChild(row);
    }
    const q = prefs.quiet_hours && typeof prefs.quiet_hours === "object" ? prefs.quiet_hours : null;
    $("quiet-on").checked = !!q;
    const qbox = $("prefs-quiet");
    qbox.textContent = "";
    for (const k of q ? Object.keys(q) : []) {
      const l = document.createElement("label");
      l.className = "inline";
      const input = document.createElement("input");
      input.dataset.key = k;
      input.size = 6;
      input.value = q[k] === null || q[k] === undefined ? "" : String(q[k]);
      input.onchange = () => { q[k] = input.value.trim(); };
      l.append(k === "tz" ? "time zone " : k + " ", input);
      qbox.appendChild(l);
    }
  }

  async function loadPrefs() {
    const g = gen;
    $("prefs-form").classList.add("hidden");
    const { status, body } = await attempt(client.getPreferences());
    if (g !== gen) return;
    if (status === 404) { prefsStatus("This server keeps no notification preferences"); return; }
    if (status !== 200 || !body || typeof body !== "object") {
      prefsStatus("Could not load the preferences (" + (status || "no answer") + ")", true);
      return;
    }
    prefs = body;
    prefsStatus("");
    renderPrefs();
    $("prefs-form").classList.remove("hidden");
  }

  async function savePrefs(ev) {
    ev.preventDefault();
    if (!prefs) return;
    const g = gen;
    const { status, body, error } = await attempt(client.setPreferences(prefs));
    if (g !== gen) return;
    if (status === 200) {
      if (body && typeof body === "object" && body.channels) { prefs = body; renderPrefs(); }
      prefsStatus("Saved");
    } else {
      prefsStatus("Not saved: " + (status ? global.notifdSession.describe(error, "change these preferences") : "cannot reach the server"), true);
    }
  }

  // A notification that came on the page's socket while the tab is hidden
  // becomes a system notification (the server sends no push then: a
  // socket got it), when the user allowed notifications.
  function notifyIfHidden(n) {
    if (document.visibilityState !== "hidden" || !("Notification" in global) ||
        Notification.permission !== "granted" || !registration || !registration.active) return;
    const p = n && n.payload;
    if (n.notification_type === "chat_notification" && p && p.sender_id === me) return; // my own
    registration.active.postMessage({ notify: n });
  }

  function start(user) {
    me = user;
    $("settings-btn").classList.remove("hidden");
    initPush();
    loadPrefs();
  }

  // Signing out: this browser stops receiving the user's pushes.  The
  // DELETE leaves before the token is forgotten (the caller signs out
  // right after); the browser's subscription goes too.
  // An expired session keeps them (signOut false): the user did not ask
  // to stop them.
  function stop(signOut) {
    gen++;
    if (signOut && endpoint) attempt(client.removePushSubscription(endpoint));
    if (signOut && endpoint && registration) {
      registration.pushManager.getSubscription().then((s) => s && s.unsubscribe()).catch(() => {});
    }
    endpoint = null;
    me = null;
    prefs = null;
    $("settings").classList.add("hidden");
    $("settings-btn").classList.add("hidden");
    $("prefs-form").classList.add("hidden");
    pushStatus("");
    prefsStatus("");
  }

  $("settings-btn").onclick = () => {
    const panel = $("settings");
    panel.classList.toggle("hidden");
    $("settings-btn").setAttribute("aria-expanded", String(!panel.classList.contains("hidden")));
  };
  $("push-toggle").onchange = () => { if ($("push-toggle").checked) enablePush(); else disablePush(); };
  $("prefs-form").onsubmit = savePrefs;
  $("quiet-on").onchange = () => {
    if (!prefs) return;
    prefs.quiet_hours = $("quiet-on").checked ? { ...QUIET_DEFAULT } : null;
    renderPrefs();
  };
  serviceWorker();

  global.notifdSettings = { start, stop, notifyIfHidden };
})(window);
