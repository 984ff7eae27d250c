// Browser test of the web chat client's sign-in against notifd's built-in
// accounts: config/single-node.yaml as committed (auth.mode users,
// accounts on, registration open, 1 h tokens, secret generated into the
// data directory), in a temporary data directory.
//
//   node tests/browser/auth.test.mjs BUILD_ROOT SOURCE_ROOT ARTIFACT_DIR
//
// alice (phone-sized screen) and bob (desktop) register in two browser
// contexts and chat; carol, in a third, is the user who must not read
// them.  Every page runs a fake clock (flowing like the real one) so the
// test can move a page to its token's refresh time.  Checks are on what
// the pages show and on the HTTP status codes; every check waits for a
// condition.
import fs from "node:fs";
import path from "node:path";
import {
  assert, assertEq, clockedContexts, conversations, expectShownOnce, openChat, run,
  sendUI, status, streamId, texts, track, waitFor, watchErrors,
} from "./lib.mjs";

const ALICE = "alice", BOB = "bob", CAROL = "carol";
const PASSWORD = { [ALICE]: "alice-secret-1", [BOB]: "bob's password", [CAROL]: "carol pass 99" };
const EXPIRED = "Your session has expired, sign in again";

const loginError = (page) => page.textContent("#login-error");
const shown = (page, sel) => page.isVisible(sel);
const stored = (page) => page.evaluate(() => JSON.parse(sessionStorage.getItem("notifd.session") || "null"));

// The answer of the first request to `pathname` that `action` causes.
async function answerOf(page, pathname, action) {
  const [resp] = await Promise.all([
    page.waitForResponse((r) => new URL(r.url()).pathname === pathname),
    action(),
  ]);
  return resp;
}

async function fillForm(page, me, password) {
  await waitFor("the password field", () => shown(page, "#password"));
  await page.fill("#me", me);
  await page.fill("#password", password);
}

async function signedIn(page, me) {
  await waitFor(`${me} signed in`, async () =>
    (await page.textContent("#who")) === me && (await status(page)) === "online");
  assert(!(await shown(page, "#login")), "sign-in form hidden");
  assert(await shown(page, "#logout"), "log out button shown");
}

async function registerUI(page, me) {
  await fillForm(page, me, PASSWORD[me]);
  const r = await answerOf(page, "/auth/register", () => page.click("#register-btn"));
  assertEq(r.status(), 201, `${me}'s registration`);
  await signedIn(page, me);
}

async function loginUI(page, me, password = PASSWORD[me]) {
  await fillForm(page, me, password);
  return answerOf(page, "/auth/login", () => page.click("#login-btn"));
}

// fetch() in the page, as a script of that origin would; the status only.
const pageFetch = (page, url, opts = {}) =>
  page.evaluate(async ([u, o]) => (await fetch(u, o)).status, [url, opts]);

// Opens a websocket in the page: "open" or "refused" (closed unopened).
const pageSocket = (page, url) => page.evaluate((u) => new Promise((resolve) => {
  const ws = new WebSocket(u);
  ws.onopen = () => { ws.close(); resolve("open"); };
  ws.onclose = () => resolve("refused");
}), url);

await run("browser-auth", async ({ step, screenshot, pages, startNotifd, launch, finish }) => {
  const notifd = await startNotifd();
  const base = notifd.base;
  const [ctxA, ctxB, ctxC] = await clockedContexts(await launch(), 3);
  const A = pages.alice = await ctxA.newPage();
  const B = pages.bob = await ctxB.newPage();
  const C = pages.carol = await ctxC.newPage();
  const pageErrors = watchErrors(pages);
  const tA = track(A), tB = track(B);
  const sidAB = streamId(ALICE, BOB);
  const bearerOf = new Map(); // page -> Authorization headers it sent to /chat/*
  for (const p of [A, B, C]) {
    bearerOf.set(p, []);
    p.on("request", (r) => {
      if (new URL(r.url()).pathname.startsWith("/chat/")) bearerOf.get(p).push(r.headers().authorization || null);
    });
  }

  await step("the sign-in form asks for a password and offers an account", async () => {
    for (const p of [A, B, C]) await p.goto(base + "/");
    await waitFor("password field and Create account", async () =>
      (await shown(A, "#password")) && (await shown(A, "#register-btn")) && (await shown(A, "#login-btn")));
    assertEq(await status(A), "offline", "status before signing in");
    assertEq(await stored(A), null, "no session yet");
  });

  await step("alice and bob create their accounts and are signed in with a token", async () => {
    await registerUI(A, ALICE);
    await registerUI(B, BOB);
    for (const [p, t, me] of [[A, tA, ALICE], [B, tB, BOB]]) {
      const s = await stored(p);
      assert(s && typeof s.token === "string" && s.token.split(".").length === 3, `${me}'s token in sessionStorage`);
      assertEq(s.userId, me, "session user");
      const u = new URL(t.noteSockets.at(-1).url());
      assertEq([u.searchParams.get("user_id"), u.searchParams.get("token")], [me, s.token],
        `${me}'s notifications socket carries the token`);
    }
    await screenshot("1-registered");
  });

  await step("a taken user id and a wrong password get clear messages", async () => {
    await fillForm(C, ALICE, "whatever-password");
    const r = await answerOf(C, "/auth/register", () => C.click("#register-btn"));
    assertEq(r.status(), 409, "registering a taken id");
    await waitFor("the 409 message", async () => (await loginError(C)) === "That user id is taken, pick another one");
    const w = await loginUI(C, BOB, "not bob's password");
    assertEq(w.status(), 401, "a wrong password");
    await waitFor("the 401 message", async () => (await loginError(C)) === "Wrong user id or password");
    assert(await shown(C, "#login"), "still on the form");
    assertEq(await stored(C), null, "no session");
    await screenshot("2-wrong-password");
  });

  await step("carol registers, logs out (back to the form, also after a reload) and signs in again", async () => {
    await registerUI(C, CAROL);
    await C.click("#logout");
    await waitFor("the form again", async () => (await shown(C, "#login")) && !(await shown(C, "#chat")));
    assertEq([await C.textContent("#who"), await status(C), await stored(C)], ["", "offline", null], "signed out");
    await C.reload();
    await waitFor("the form after a reload", () => shown(C, "#password"));
    assert(!(await shown(C, "#chat")), "no chat after a reload");
    const r = await loginUI(C, CAROL);
    assertEq(r.status(), 200, "carol's login");
    await signedIn(C, CAROL);
  });

  await step("alice writes to bob: bob's notifications socket raises a badge", async () => {
    await openChat(A, BOB);
    const u = new URL(tA.chatSockets.at(-1).url());
    assertEq([u.searchParams.get("stream_id"), u.searchParams.get("sender_id"), u.searchParams.get("receiver_id"),
      u.searchParams.get("token")], [sidAB, ALICE, BOB, (await stored(A)).token], "chat socket parameters");
    await sendUI(A, "hello bob");
    await waitFor("bob's badge for alice = 1", async () =>
      (await conversations(B)).some((c) => c.peer === ALICE && c.badge === "1"));
    await screenshot("3-badge");
  });

  await step("bob opens it; messages both ways appear live, each once", async () => {
    await B.click(`#conversations li[data-peer="${ALICE}"]`);
    await waitFor("bob's conversation open", async () =>
      (await B.textContent("#title")) === "Chat with " + ALICE && (await status(B)) === "online");
    await expectShownOnce(B, "hello bob", "bob");
    assertEq((await conversations(B)).find((c) => c.peer === ALICE).badge, null, "badge cleared");
    await sendUI(B, "hi alice");
    await expectShownOnce(A, "hi alice", "alice");
    await sendUI(A, "how are you?");
    await expectShownOnce(B, "how are you?", "bob");
    const want = ["hello bob", "hi alice", "how are you?"];
    assertEq(await texts(A), want, "alice's conversation");
    assertEq(await texts(B), want, "bob's conversation");
    for (const [p, who] of [[A, ALICE], [B, BOB]]) {
      const token = (await stored(p)).token;
      const sent = bearerOf.get(p);
      assert(sent.length > 0 && sent.every((h) => h === "Bearer " + token), `${who}'s /chat calls carry the bearer token`);
    }
    await screenshot("4-chat");
  });

  await step("a reload keeps the session, the conversation and its history", async () => {
    const before = (await stored(B)).token;
    await B.reload();
    await signedIn(B, BOB);
    await waitFor("bob's history after the reload", async () =>
      (await B.textContent("#title")) === "Chat with " + ALICE && (await texts(B)).length === 3);
    assertEq(await texts(B), ["hello bob", "hi alice", "how are you?"], "history after the reload");
    assertEq((await stored(B)).token, before, "same session");
    // A reload whose /auth/me gets no answer says so and asks again.
    await B.route("**/auth/me", (route) => route.abort());
    await B.reload();
    await waitFor("the unreachable message", async () =>
      (await loginError(B)) === "Cannot reach the server, trying again…");
    await B.unroute("**/auth/me");
    await signedIn(B, BOB);
    assertEq((await stored(B)).token, before, "same session after the retry");
  });

  await step("the token is refreshed a minute before it expires", async () => {
    const s0 = await stored(A);
    const left = s0.expiresAt - (await A.evaluate(() => Date.now()));
    assert(left > 120000, `token lifetime left: ${left} ms`);
    // Move alice's clock to 30 s before the planned refresh: none yet.
    let refreshes = 0;
    A.on("request", (r) => { if (new URL(r.url()).pathname === "/auth/refresh") refreshes++; });
    await A.clock.fastForward(left - 90000);
    await A.evaluate(() => new Promise((r) => setTimeout(r, 0)));
    assertEq(refreshes, 0, "no refresh earlier than a minute before the expiry");
    const r = await answerOf(A, "/auth/refresh", () => A.clock.fastForward(31000));
    assertEq(r.status(), 200, "refresh");
    await waitFor("the new token stored", async () => (await stored(A)).at > s0.at);
    const s1 = await stored(A);
    assert(s1.expiresAt > s0.expiresAt, "later expiry");
    await sendUI(A, "sent with the refreshed token");
    await expectShownOnce(B, "sent with the refreshed token", "bob");
  });

  await step("carol cannot read alice and bob's conversation or subscribe to it", async () => {
    const token = (await stored(C)).token;
    const auth = { headers: { Authorization: "Bearer " + token } };
    const hist = (peer) => `/chat/streams/${sidAB}/messages?peer_id=${encodeURIComponent(peer)}`;
    assertEq(await pageFetch(C, hist(BOB), auth), 403, "carol reads alice<->bob with peer_id=bob");
    assertEq(await pageFetch(C, hist(ALICE), auth), 403, "carol reads alice<->bob with peer_id=alice");
    assertEq(await pageFetch(C, hist(BOB)), 401, "the same without a token");
    assertEq(await pageFetch(A, hist(BOB), { headers: { Authorization: "Bearer " + (await stored(A)).token } }), 200,
      "alice reads her own conversation");
    // Carol posting as alice.
    const forged = { content: "forged", stream_id: sidAB, sender_id: ALICE, receiver_id: BOB };
    assertEq(await pageFetch(C, "/chat/messages", {
      method: "POST", headers: { ...auth.headers, "Content-Type": "application/json" }, body: JSON.stringify(forged),
    }), 403, "carol posts as alice");

    // The page's own history call, pointed at alice and bob's stream:
    // what carol sees is the 403 message, and no message of theirs.
    const sidCB = streamId(CAROL, BOB);
    await C.route(`**/chat/streams/${sidCB}/messages*`, (route) =>
      route.continue({ url: route.request().url().replace(sidCB, sidAB) }));
    await openChat(C, BOB);
    await waitFor("the 403 message in carol's page", async () =>
      (await C.textContent("#error")) === "Could not load the history: You are not allowed to read this conversation");
    assertEq(await texts(C), [], "nothing of alice and bob's shown");
    await C.unroute(`**/chat/streams/${sidCB}/messages*`);
    await screenshot("5-refused-read");

    // Websockets: refused in the page, and the upgrade's status.
    const ws = (q) => "/chat/subscribe-websocket?" + new URLSearchParams(q);
    const asAlice = { stream_id: sidAB, sender_id: ALICE, receiver_id: BOB };
    const asCarol = { stream_id: sidAB, sender_id: CAROL, receiver_id: BOB };
    // 403: another user's socket; 400: the stream is not carol<->bob's.
    for (const [what, q, want] of [["as alice", asAlice, 403], ["as carol", asCarol, 400]]) {
      assertEq(await pageSocket(C, notifd.base.replace("http", "ws") + ws({ ...q, token })), "refused",
        `carol's chat socket to alice<->bob ${what} in the page`);
      assertEq(await notifd.upgradeStatus(ws({ ...q, token })), want,
        `carol's chat socket to alice<->bob ${what}: upgrade status`);
    }
    const note = "/notifications/subscribe?" + new URLSearchParams({ user_id: ALICE, token });
    assertEq(await notifd.upgradeStatus(note), 403, "carol subscribes to alice's notifications: upgrade status");
    assertEq(await notifd.upgradeStatus(ws({ ...asAlice, token: (await stored(A)).token })), 101,
      "alice's own token is accepted");
    assert(!(await texts(C)).includes("forged"), "nothing forged shown");
  });

  await step("a 401 that a refresh cannot cure ends the session with a clear message", async () => {
    // The server is replaced by answers that refuse carol's token: the
    // send gets 401, the one refresh gets 401, the page goes back to the form.
    let refreshes = 0;
    await C.route("**/chat/messages", (route) => route.fulfill({
      status: 401, contentType: "application/json", body: '{"error":"token expired"}' }));
    await C.route("**/auth/refresh", (route) => { refreshes++; route.fulfill({
      status: 401, contentType: "application/json", body: '{"error":"token expired"}' }); });
    await C.fill("#text", "to bob");
    await C.press("#text", "Enter");
    await waitFor("the form with the expiry message", async () =>
      (await shown(C, "#login")) && (await loginError(C)) === EXPIRED);
    assertEq(refreshes, 1, "one refresh attempt");
    assertEq([await C.inputValue("#me"), await stored(C), await status(C)], [CAROL, null, "offline"],
      "signed out, user id kept in the form");
    await C.unrouteAll();
    await screenshot("6-expired");
    const r = await loginUI(C, CAROL);
    assertEq(r.status(), 200, "carol signs in again");
    await signedIn(C, CAROL);
  });

  await step("a new signing secret: refused websockets, refused refresh, back to the form; sign in again", async () => {
    const refreshes = [];
    A.on("response", (r) => { if (new URL(r.url()).pathname === "/auth/refresh") refreshes.push(r.status()); });
    // Tokens younger than 30 s are not refreshed after a refused socket.
    for (const p of [A, B]) await p.clock.fastForward(31000);
    await notifd.stop();
    fs.rmSync(path.join(notifd.dataDir, "auth.secret"));
    await notifd.start(); // a new secret: every token issued so far is refused
    for (const [p, who] of [[A, ALICE], [B, BOB]]) {
      await waitFor(`${who} back on the form with the expiry message`, async () =>
        (await shown(p, "#login")) && (await loginError(p)) === EXPIRED);
      assertEq(await p.inputValue("#me"), who, "user id kept");
    }
    assert(refreshes.length >= 1 && refreshes.every((st) => st === 401), `alice's refreshes: ${refreshes}`);
    await screenshot("7-new-secret");
    for (const [p, who] of [[A, ALICE], [B, BOB]]) {
      assertEq((await loginUI(p, who)).status(), 200, `${who} signs in again`);
      await signedIn(p, who);
    }
    await waitFor("alice's conversation with bob again", async () =>
      (await A.textContent("#title")) === "Chat with " + BOB && (await texts(A)).length === 4);
    await sendUI(B, "after the new secret");
    await expectShownOnce(A, "after the new secret", "alice");
  });

  await step("too many attempts and closed registration get clear messages", async () => {
    await C.click("#logout");
    await waitFor("the form", () => shown(C, "#login"));
    // Someone guesses carol's password (auth.login_limit.per_user: 10 a
    // minute): the server refuses her next attempt with 429 + Retry-After.
    for (let i = 0; i < 10; i++) {
      const r = await fetch(notifd.base + "/auth/login", { method: "POST",
        body: JSON.stringify({ user_id: CAROL, password: "a wrong guess " + i }) });
      assertEq(r.status, 401, `guess ${i}`);
    }
    const limited = await loginUI(C, CAROL);
    assertEq(limited.status(), 429, "carol's own attempt after the guesses");
    const wait = Number(limited.headers()["retry-after"]);
    assert(wait >= 1 && wait <= 6, `Retry-After ${wait}`);
    await waitFor("the 429 message", async () =>
      /^Too many attempts, try again in [1-6] s$/.test(await loginError(C)));
    // A server with registration closed.
    const closed = await startNotifd({ name: "closed", env: { NOTIFD_REGISTRATION: "closed" } });
    await C.goto(closed.base + "/");
    await fillForm(C, "dave", "dave's password");
    const r = await answerOf(C, "/auth/register", () => C.click("#register-btn"));
    assertEq(r.status(), 403, "registration closed");
    await waitFor("the closed message", async () => (await loginError(C)) === "Registration is closed on this server");
    await closed.stop();
  });

  await finish(pageErrors, notifd);
});
