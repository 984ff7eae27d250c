// What the pieces of the web client share (window.notifdUtil): times,
// websocket URLs and the reconnecting websocket.
(function (global) {
  "use strict";
  const session = global.notifdSession;
  const BACKOFF_FIRST_MS = 500, BACKOFF_MAX_MS = 15000;
  // Close codes after which the token may be what the server refused.
  const AUTH_CLOSE_CODES = new Set([1008, 4401, 4403]);
  // Subprotocols a server of this page answered without (an older
  // notifd): asked no more on this page, see resilientSocket.
  const refusedProtocols = new Set();

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

  // "14:05" today, "Yesterday 14:05", "Mon 3 Jul 14:05" this year, with the
  // year before that; NaN gives "".
  function formatWhen(t) {
    if (!Number.isFinite(t)) return "";
    const d = new Date(t), now = new Date();
    const time = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    const day = (x) => new Date(x.getFullYear(), x.getMonth(), x.getDate()).getTime();
    const days = Math.round((day(now) - day(d)) / 86400000);
    if (days === 0) return time;
    if (days === 1) return "Yesterday " + time;
    const opts = { weekday: "short", day: "numeric", month: "short" };
    if (d.getFullYear() !== now.getFullYear()) opts.year = "numeric";
    return d.toLocaleDateString([], opts) + " " + time;
  }

  const wsBase = () => (location.protocol === "https:" ? "wss://" : "ws://") + location.host;

  // A websocket URL with the current token (none without accounts).
  function wsUrl(pathname, params) {
    const q = new URLSearchParams(params);
    const t = session.token();
    if (t) q.set("token", t);
    return wsBase() + pathname + "?" + q;
  }

  // A websocket that reconnects with backoff (0.5 s doubling to 15 s,
  // back to 0.5 s once a connection opens).  url() is called for every
  // connection, so each carries the current token.  A connection that never
  // opened (browsers hide the status of a refused upgrade) or that was
  // closed with an auth close code refreshes the token before the next try;
  // the backoff delay runs meanwhile.
  //
  // `protocol` (optional) is offered as Sec-WebSocket-Protocol.  A server
  // that does not know it answers without one, which the browser treats as
  // a failed connection that looks like any other; so after a failure the
  // next try goes without the protocol, and when that one opens the
  // protocol is not offered again on this page.  Once the protocol has
  // been accepted it is always offered.  h.onOpen(protocol) gets the
  // negotiated one ("" for none).
  function resilientSocket(url, h, protocol) {
    let ws = null, delay = BACKOFF_FIRST_MS, stopped = false, timer = null;
    let offer = !!protocol, accepted = false;
    function connect() {
      timer = null;
      let opened = false;
      const offered = offer && !refusedProtocols.has(protocol);
      ws = offered ? new WebSocket(url(), [protocol]) : new WebSocket(url());
      ws.onopen = () => {
        opened = true;
        delay = BACKOFF_FIRST_MS;
        if (offered) accepted = true;
        else if (protocol && !accepted) refusedProtocols.add(protocol);
        h.onOpen(ws.protocol || "");
      };
      ws.onmessage = (ev) => {
        let m;
        try { m = JSON.parse(ev.data); } catch (e) { return; /* not JSON */ }
        h.onMessage(m);
      };
      ws.onclose = (ev) => {
        if (stopped) return;
        h.onDown(ev);
        if (protocol && !accepted && !opened) offer = !offered; // alternate until one opens
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
      // Sends `obj` as JSON when the socket is open; false otherwise.
      send(obj) {
        if (!ws || ws.readyState !== WebSocket.OPEN) return false;
        ws.send(JSON.stringify(obj));
        return true;
      },
      close() {
        stopped = true;
        clearTimeout(timer);
        if (ws) { ws.onmessage = ws.onclose = ws.onopen = null; ws.close(1000); }
      },
    };
  }

  // GET `url` as JSON: {status, body}; status 0 when the server could not
  // be reached.  Never throws.
  async function getJson(url) {
    try {
      const r = await session.fetch(url, { cache: "no-store" });
      return { status: r.status, body: await r.json().catch(() => null), r };
    } catch (e) {
      return { status: 0, body: null, r: null };
    }
  }

  // `method` `url` with a JSON body: {status, body}; status 0 when
  // unreachable.  Never throws.
  async function sendJson(method, url, body) {
    try {
      const r = await session.fetch(url, {
        method, headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      });
      return { status: r.status, body: await r.json().catch(() => null), r };
    } catch (e) {
      return { status: 0, body: null, r: null };
    }
  }

  global.notifdUtil = {
    BACKOFF_FIRST_MS, BACKOFF_MAX_MS, parseTime, formatWhen, wsUrl, resilientSocket, getJson, sendJson,
  };
})(window);
