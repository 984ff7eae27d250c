// What the pieces of the web client share (window.notifdUtil): times and
// the reconnect delays.  Sockets, HTTP calls and the session are the
// client library's (client/notifd.js, through session.js).
import { parseTime, streamId } from "./client/notifd.js";

const client = window.notifdClient;
const BACKOFF_FIRST_MS = client.backoff.initialMs, BACKOFF_MAX_MS = client.backoff.maxMs;

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

// The contract's stream id (the library's), for tests and the console.
window.notifdStreamId = streamId;
window.notifdUtil = { BACKOFF_FIRST_MS, BACKOFF_MAX_MS, parseTime, formatWhen };
