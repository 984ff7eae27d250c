// Browser test of the web chat client (web/) served by the built notifd
// with the roles of config/single-node.yaml (all five, embedded backends)
// in seed mode: auth.mode none and no accounts, so a user id alone signs
// in (accounts and tokens, with single-node.yaml as committed, are
// auth.test.mjs's).
//
//   node tests/browser/chat.test.mjs BUILD_ROOT SOURCE_ROOT ARTIFACT_DIR
//
// Two browser contexts are two users (alice on a phone-sized screen, bob
// on a desktop one); a third user (carol) talks to them over HTTP.  Every
// check waits for a condition in the page; nothing asserts on durations.
// Screenshots and the notifd log go to ARTIFACT_DIR.  run.sh is the entry
// point that meson calls (it skips when node or chromium is missing).
import { randomBytes } from "node:crypto";
import {
  assert, assertEq, clockedContexts, conversations, expectShownOnce, messages,
  openChat, run, sendUI, sleep, status, streamId, texts, track, waitFor, watchErrors,
} from "./lib.mjs";

const ALICE = "alice";
const BOB = 'bob&<b>co</b>';   // markup in an id: must show as text
const CAROL = "carol";

async function signIn(page, base, me) {
  await page.goto(base + "/");
  await page.fill("#me", me);
  await page.click("#login-btn");
  await waitFor(`${me} signed in`, async () => (await page.textContent("#who")) === me);
}

await run("browser", async ({ step, screenshot, pages, startNotifd, launch, finish }) => {
  const internalToken = randomBytes(16).toString("hex");
  const notifd = await startNotifd({ auth: { mode: "none", internal_token: internalToken } });
  const base = notifd.base;

  // alice: a phone-sized screen, bob: a desktop one.  Both run a fake
  // clock so the test can hold a reconnect back and step through the
  // backoff.
  const browser = await launch();
  const [ctxA, ctxB] = await clockedContexts(browser, 2);
  // Counts close events of alice's chat sockets as the page sees them (the
  // reconnect timer is armed in the same dispatch), so the backoff steps
  // below advance her clock only once the page has handled a failure.
  await ctxA.addInitScript(() => {
    const Native = window.WebSocket;
    window.__chatCloses = 0;
    window.WebSocket = class extends Native {
      constructor(...args) {
        super(...args);
        if (String(args[0]).includes("/chat/subscribe-websocket")) {
          this.addEventListener("close", () => { window.__chatCloses++; });
        }
      }
    };
  });
  const A = pages.alice = await ctxA.newPage();
  const B = pages.bob = await ctxB.newPage();
  const pageErrors = watchErrors(pages);
  const tA = track(A), tB = track(B);
  const sidAB = streamId(ALICE, BOB);

  await step("the page (client/notifd.js) computes the same stream ids as the server's algorithm", async () => {
    await A.goto(base + "/");
    const pairs = [[ALICE, BOB], [BOB, ALICE], ["a", "ab"], ["ab", "a"], ["", "x"],
      ["Zoë", "zoe"], ["日本", "\u{1F600}"], ["x".repeat(60), "y".repeat(70)]];
    const got = await A.evaluate((ps) => ps.map(([a, b]) => window.notifdStreamId(a, b)), pairs);
    assertEq(got, pairs.map(([a, b]) => streamId(a, b)), "stream ids");
  });

  await step("both users sign in and open their conversation", async () => {
    await signIn(A, base, ALICE);
    await signIn(B, base, BOB);
    await openChat(A, BOB);
    await openChat(B, ALICE);
    assertEq(await A.textContent("#title"), "Chat with " + BOB, "peer id shown as text");
    assertEq(await B.$$eval("#title b, #conversations b", (e) => e.length), 0, "markup in an id is not parsed");
    // One open chat socket each (against a server without notifd.chat.v2
    // the page's first try, offering it, fails and the second goes without).
    const open = (t) => t.chatSockets.filter((ws) => !ws.isClosed());
    assert(open(tA).length === 1 && open(tB).length === 1, "one chat socket each");
    const u = new URL(open(tA)[0].url());
    assertEq([u.searchParams.get("stream_id"), u.searchParams.get("sender_id"), u.searchParams.get("receiver_id")],
      [sidAB, ALICE, BOB], "chat socket parameters");
  });

  await step("messages both ways appear in both pages, each once, in order", async () => {
    await sendUI(A, "hello from alice");
    await expectShownOnce(B, "hello from alice", "bob");
    await sendUI(B, "hi alice, bob here");
    await expectShownOnce(A, "hi alice, bob here", "alice");
    await sendUI(A, "second from alice");
    await expectShownOnce(B, "second from alice", "bob");
    // The sender gets its message twice (POST answer and chat socket):
    // wait for the socket frame, then it must still be shown once.
    for (const [page, t, who, text] of [[A, tA, "alice", "second from alice"], [B, tB, "bob", "hi alice, bob here"]]) {
      await waitFor(`${who}'s own message on its chat socket`, () => t.chatFrames.some((f) => f.content === text));
      await expectShownOnce(page, text, who);
    }
    const want = ["hello from alice", "hi alice, bob here", "second from alice"];
    assertEq(await texts(A), want, "alice's conversation");
    assertEq(await texts(B), want, "bob's conversation");
    assertEq((await messages(A)).map((m) => m.mine), [true, false, true], "alice's own messages marked");
    // Bob's conversation is open: no unread badge for it anywhere.
    assertEq((await conversations(A)).filter((c) => c.badge !== null), [], "no badge for the open chat");
    await screenshot("1-exchange");
  });

  await step("message text with markup is shown as text, never run", async () => {
    const evil = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>';
    await sendUI(B, evil);
    await expectShownOnce(A, evil, "alice");
    await expectShownOnce(B, evil, "bob");
    for (const p of [A, B]) {
      assertEq(await p.$$eval("#messages img, #messages script", (e) => e.length), 0, "no element from the text");
      assertEq(await p.evaluate(() => window.__pwned ?? null), null, "no script ran");
    }
  });

  await step("a third user's messages raise a badge on the closed conversation", async () => {
    const sidAC = streamId(ALICE, CAROL);
    for (const content of ["carol: are you there?", "carol: ping"]) {
      const r = await notifd.post("/chat/persist", { content, stream_id: sidAC, sender_id: CAROL, receiver_id: ALICE });
      assertEq(r.status, 201, "carol's POST");
    }
    // bob's notifications socket too (user id with markup, URL-encoded)
    const r = await notifd.post("/chat/persist",
      { content: "carol to bob", stream_id: streamId(BOB, CAROL), sender_id: CAROL, receiver_id: BOB });
    assertEq(r.status, 201, "carol's POST to bob");
    await waitFor("alice's badge for carol = 2", async () =>
      (await conversations(A)).some((c) => c.peer === CAROL && c.badge === "2"));
    await waitFor("bob's badge for carol = 1", async () =>
      (await conversations(B)).some((c) => c.peer === CAROL && c.badge === "1"));
    const convA = await conversations(A);
    assertEq(convA.find((c) => c.peer === BOB), { peer: BOB, name: BOB, badge: null, active: true },
      "bob's entry: open, no badge");
    assert(!(await texts(A)).some((t) => t.startsWith("carol")), "carol's messages not in bob's conversation");
    await screenshot("2-badge");
    // Opening carol's conversation clears the badge and shows her history.
    await A.click(`#conversations li[data-peer="${CAROL}"]`);
    await waitFor("carol's history", async () =>
      JSON.stringify(await texts(A)) === JSON.stringify(["carol: are you there?", "carol: ping"]));
    assertEq((await conversations(A)).find((c) => c.peer === CAROL).badge, null, "badge cleared");
    assertEq(new URL(A.url()).searchParams.get("peer"), CAROL, "open conversation in the address");
    // Back to bob by the list.
    await A.click(`#conversations li[data-peer="${BOB.replace(/"/g, '\\"')}"]`);
    await waitFor("bob's history again", async () => (await texts(A)).length === 4 && (await status(A)) === "online");
  });

  await step("history is ordered by time, not by the text of created_at", async () => {
    // A conversation whose history the test serves itself: times with 0,
    // 1, 2 and 9 fractional digits and a zone offset, in scrambled order.
    // As strings "…00.7Z" sorts after "…00.75Z" and "11:59:59.5+02:00"
    // after "10:00:01Z".
    const peer = "order-test";
    const sid = streamId(ALICE, peer);
    const msg = (id, created_at, content) => ({ message_id: id, content, created_at, stream_id: sid, sender_id: peer, receiver_id: ALICE });
    const body = { messages: [
      msg("m2", "2030-01-01T10:00:00.7Z", "second"),
      msg("m5", "2030-01-01T10:00:01.001500001Z", "fifth"),
      msg("m4", "2030-01-01T10:00:01Z", "fourth"),
      msg("m1", "2030-01-01T11:59:59.5+02:00", "first"),
      msg("m3", "2030-01-01T10:00:00.75Z", "third"),
    ], next_before: null };
    const pattern = `**/chat/streams/${sid}/messages*`;
    await A.route(pattern, (route) => route.fulfill({ status: 200, contentType: "application/json", body: JSON.stringify(body) }));
    await openChat(A, peer);
    await waitFor("served history shown", async () => (await texts(A)).length === 5);
    assertEq(await texts(A), ["first", "second", "third", "fourth", "fifth"], "order by time");
    await A.unroute(pattern);
    await A.click(`#conversations li[data-peer="${BOB.replace(/"/g, '\\"')}"]`);
    await waitFor("bob's conversation again", async () => (await texts(A)).length === 4 && (await status(A)) === "online");
  });

  await step("the page fits a phone-sized screen", async () => {
    const m = await A.evaluate(() => {
      const send = document.getElementById("send").getBoundingClientRect();
      const list = document.getElementById("conversations").getBoundingClientRect();
      const msgs = document.getElementById("messages").getBoundingClientRect();
      return { scrollW: document.documentElement.scrollWidth, innerW: window.innerWidth,
        sendRight: send.right, listBottom: list.bottom, msgsTop: msgs.top };
    });
    assert(m.scrollW <= m.innerW, `no horizontal scrolling (${m.scrollW} > ${m.innerW})`);
    assert(m.sendRight <= m.innerW, "send button inside the screen");
    assert(m.listBottom <= m.msgsTop, "conversation list stacked above the messages");
  });

  const historyAB = ["hello from alice", "hi alice, bob here", "second from alice",
    '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'];

  await step("a reload comes back to the same conversation with its history", async () => {
    await A.reload();
    await waitFor("alice back in bob's conversation", async () =>
      (await A.textContent("#who")) === ALICE && (await A.textContent("#title")) === "Chat with " + BOB &&
      (await status(A)) === "online");
    await waitFor("history after reload", async () => (await texts(A)).length === historyAB.length);
    assertEq(await texts(A), historyAB, "history after reload");
    assertEq(new Set((await messages(A)).map((m) => m.id)).size, historyAB.length, "distinct message ids");
    await screenshot("3-reload");
  });

  // Freezes the page's timers (the reconnect timer among them) from now on.
  async function pause(page) {
    const now = await page.evaluate(() => Date.now());
    await page.clock.pauseAt(now + 1000);
  }

  await step("server closes the chat socket (4001): reconnect and refetch the missed message", async () => {
    await pause(A); // alice's reconnect waits for the test
    const r = await notifd.post(`/chat/streams/${sidAB}/close`, {}, { "X-Notifd-Internal-Token": internalToken });
    assertEq([r.status, r.body && r.body.closed], [200, 2], "both chat sockets closed");
    await waitFor("alice connecting", async () => (await status(A)) === "connecting");
    // bob's clock runs: he reconnects and sends while alice is away.
    const bobSockets = tB.chatSockets.length;
    await waitFor("bob reconnected", async () => tB.chatSockets.length > bobSockets && (await status(B)) === "online");
    const text = "sent while alice was disconnected";
    await sendUI(B, text);
    await waitFor("bob's socket got it (delivery ran)", () => tB.chatFrames.some((f) => f.content === text));
    assert(!(await texts(A)).includes(text), "alice cannot have it yet: her socket is closed");
    assertEq(await status(A), "connecting", "alice still disconnected");
    await A.clock.resume();
    await expectShownOnce(A, text, "alice");
    await waitFor("alice online", async () => (await status(A)) === "online");
    historyAB.push(text);
    assertEq(await texts(A), historyAB, "alice's conversation after the catch-up");
  });

  await step("notifd restarts: backoff 0.5 s then 1 s, reconnect, history and badges again", async () => {
    await pause(A);
    const n0 = tA.chatSockets.length;
    const closes = () => A.evaluate(() => window.__chatCloses);
    const c0 = await closes();
    await notifd.stop(); // SIGTERM, exit code 0 asserted
    await waitFor("alice's chat socket closed", async () => (await closes()) === c0 + 1);
    await waitFor("alice connecting", async () => (await status(A)) === "connecting");
    await waitFor("bob connecting", async () => (await status(B)) === "connecting");
    await screenshot("4-server-down");
    // Backoff, on alice's paused clock: the first retry 500 ms after the
    // drop, the second 1000 ms after the first failed.  (The pauses before
    // the "no retry yet" checks can only make those checks more lenient.)
    await A.clock.runFor(499); await sleep(300);
    assertEq(tA.chatSockets.length, n0, "no retry before 500 ms");
    await A.clock.runFor(1);
    await waitFor("first retry", () => tA.chatSockets.length === n0 + 1);
    await waitFor("first retry refused", async () => (await closes()) === c0 + 2);
    await A.clock.runFor(999); await sleep(300);
    assertEq(tA.chatSockets.length, n0 + 1, "no second retry before 1000 ms");
    await A.clock.runFor(1);
    await waitFor("second retry", () => tA.chatSockets.length === n0 + 2);
    await waitFor("second retry refused", async () => (await closes()) === c0 + 3);

    await notifd.start(); // same ports, same data directory
    // bob's clock runs on; move it on so his next retry comes now.
    await waitFor("bob online again", async () => {
      if ((await status(B)) === "online") return true;
      await B.clock.fastForward(2000);
      return false;
    });
    const text = "sent after the restart";
    await sendUI(B, text);
    await waitFor("bob's socket got it", () => tB.chatFrames.some((f) => f.content === text));
    assert(!(await texts(A)).includes(text), "alice cannot have it yet");
    await A.clock.resume();
    await expectShownOnce(A, text, "alice");
    await waitFor("alice online", async () => (await status(A)) === "online");
    historyAB.push(text);
    assertEq(await texts(A), historyAB, "alice's conversation after the restart");
    assertEq(await texts(B), historyAB, "bob's conversation after the restart");
    // The notifications socket is back too.
    const r = await notifd.post("/chat/persist",
      { content: "carol again", stream_id: streamId(ALICE, CAROL), sender_id: CAROL, receiver_id: ALICE });
    assertEq(r.status, 201, "carol's POST");
    await waitFor("alice's badge for carol = 1", async () =>
      (await conversations(A)).some((c) => c.peer === CAROL && c.badge === "1"));
    await screenshot("5-after-restart");
  });

  await finish(pageErrors, notifd);
});

