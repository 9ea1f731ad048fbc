// Unit tests of wizard-status.js against contract section 7, in Node with fake browser APIs.
// Run: node --test test/
import { afterEach, beforeEach, describe, mock, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

import {
  CredentialError, LABELS, REQUIREMENTS, WizardStatusClient, fetchTicket, textDirection,
} from "../src/wizard-status.js";
import { WS_URL, advance, flush, installBrowser, jsonResponse, makeStatus } from "./fakes.mjs";

const SOURCE = new URL("../src/wizard-status.js", import.meta.url);
const POLL_PATH = "/api/v1/accounts/wizard-status";

let env;
let clients;

/** Fresh fake browser (and mocked setTimeout/Date) around every test of the enclosing block. */
function useBrowser(options) {
  beforeEach(() => {
    mock.timers.enable({ apis: ["setTimeout", "Date"] });
    env = installBrowser(options);
    clients = [];
  });
  afterEach(() => {
    for (const client of clients) client.close();
    env.uninstall();
    mock.timers.reset();
    mock.restoreAll();
  });
}

/** A client on WS_URL whose events are logged. */
function start(options = {}) {
  const client = new WizardStatusClient({ url: WS_URL, ...options });
  clients.push(client);
  const log = { states: [], statuses: [], errors: [] };
  client.on("state", (state) => log.states.push(state));
  client.on("status", (status) => log.statuses.push(status.version));
  client.on("error", (frame) => log.errors.push(frame));
  return { client, log };
}

/** A `ticket` function handing out distinct tickets, counting its calls. */
function tickets(prefix = "tk") {
  const source = async () => `${prefix}-${++source.calls}`;
  source.calls = 0;
  return source;
}

/** Lets the pending attempt make its socket, accepts it and delivers a status: state "open". */
async function openSocket(client, version = 1) {
  await flush();
  const socket = env.lastSocket;
  assert.ok(socket && socket.readyState === 0, "a socket is connecting");
  socket.accept();
  socket.receive(makeStatus(version));
  assert.equal(client.state, "open");
  return socket;
}

/** Closes the connecting socket `times` times before any status; the last retry is left pending. */
async function failHandshakes(times, code = 1006) {
  let delay;
  for (let i = 0; i < times; i++) {
    if (i > 0) {
      mock.timers.tick(delay);
      await flush();
    } else await flush();
    const socket = env.lastSocket;
    assert.ok(socket && socket.readyState === 0, `handshake ${i + 1}: a socket is connecting`);
    [delay] = env.timeoutsDuring(() => socket.drop(code));
  }
  return delay;
}

const ticketParam = (socket) => new URL(socket.url).searchParams.get("ticket");
const stubRandom = (value) => mock.method(Math, "random", () => value);

describe("backoff", () => {
  useBrowser();

  test("delays are uniform in [0, min(20 s, 500 ms·2^k)] for attempt k over 2250 draws (bounds, means, deciles, cap)", async () => {
    const attempts = 9;
    const ceilings = Array.from({ length: attempts }, (_, k) => Math.min(20000, 500 * 2 ** k));
    const draws = ceilings.map(() => []);
    const { client } = start();
    for (let cycle = 0; cycle < 250; cycle++) {
      await openSocket(client, cycle + 1); // resets the attempt counter
      for (let k = 0; k < attempts; k++) {
        const socket = env.lastSocket;
        const delays = env.timeoutsDuring(() => socket.drop(1006));
        assert.equal(delays.length, 1, "one retry timer per close");
        draws[k].push(delays[0]);
        const before = env.sockets.length;
        mock.timers.tick(delays[0]);
        await flush();
        assert.equal(env.sockets.length, before + 1, "the attempt is made when its delay has passed");
      }
    }
    const normalised = [];
    draws.forEach((delays, k) => {
      const ceiling = ceilings[k];
      assert.ok(Math.min(...delays) >= 0, `attempt ${k}: no negative delay`);
      assert.ok(Math.max(...delays) <= ceiling, `attempt ${k}: max ${Math.max(...delays)} > ${ceiling}`);
      const mean = delays.reduce((a, b) => a + b, 0) / delays.length;
      // 250 draws: the mean's standard deviation is 1.8 % of the ceiling; allow 10 %.
      assert.ok(Math.abs(mean - ceiling / 2) < 0.1 * ceiling, `attempt ${k}: mean ${mean} vs ${ceiling / 2}`);
      normalised.push(...delays.map((delay) => delay / ceiling));
    });
    const capped = draws.slice(6).flat();
    assert.ok(Math.max(...capped) <= 20000 && Math.max(...capped) > 19000, "the cap (20 s) is reached, never passed");
    // The whole range is used: full jitter, not "half plus jitter".
    assert.ok(Math.min(...normalised) < 0.01 && Math.max(...normalised) > 0.99);
    const buckets = Array(10).fill(0);
    for (const x of normalised) buckets[Math.min(9, Math.floor(x * 10))]++;
    const expected = normalised.length / 10;
    const chiSquare = buckets.reduce((sum, n) => sum + (n - expected) ** 2 / expected, 0);
    // 9 degrees of freedom: P(χ² > 45) ≈ 1e-6; each bucket within 5 standard deviations.
    assert.ok(chiSquare < 45, `deciles ${buckets} (χ² = ${chiSquare.toFixed(1)})`);
    for (const n of buckets) assert.ok(Math.abs(n - expected) < 5 * Math.sqrt(expected * 0.9), `deciles ${buckets}`);
  });

  test("ceilings double from 500 ms and stop at 20 s (Math.random = 0.5: exact timings)", async () => {
    start();
    stubRandom(0.5);
    const halves = [250, 500, 1000, 2000, 4000, 8000, 10000, 10000];
    for (const [k, half] of halves.entries()) {
      await flush();
      const socket = env.lastSocket;
      assert.deepEqual(env.timeoutsDuring(() => socket.drop(1006)), [half], `attempt ${k}`);
      const count = env.sockets.length;
      await advance(half - 1);
      assert.equal(env.sockets.length, count, `attempt ${k}: no attempt before ${half} ms`);
      await advance(1);
      assert.equal(env.sockets.length, count + 1, `attempt ${k}: the attempt at ${half} ms`);
    }
  });

  test("the attempt counter resets once a connection delivered its first status, not at the handshake", async () => {
    const { client } = start();
    stubRandom(0.5);
    await flush();
    const drop = (socket, code = 1006) => env.timeoutsDuring(() => socket.drop(code));
    assert.deepEqual(drop(env.lastSocket), [250]);
    await advance(250);
    assert.deepEqual(drop(env.lastSocket), [500]);
    await advance(500);
    env.lastSocket.accept(); // handshake only: no status
    assert.deepEqual(drop(env.lastSocket), [1000], "an accepted handshake alone does not reset");
    await advance(1000);
    const socket = await openSocket(client, 1);
    assert.deepEqual(drop(socket), [250], "a delivered status resets to attempt 0");
    await advance(250);
    assert.deepEqual(drop(env.lastSocket), [500]);
  });
});

describe("state", () => {
  useBrowser();

  test('"connecting" until the first status of a connection; the handshake alone is not "open"', async () => {
    const { client, log } = start();
    assert.equal(client.state, "connecting");
    await flush();
    const socket = env.lastSocket;
    socket.accept();
    assert.equal(client.state, "connecting");
    socket.receive({ type: "pong", timestamp: "2025-10-22T12:34:56.789Z" });
    assert.equal(client.state, "connecting");
    assert.deepEqual(log.states, []);
    socket.receive(makeStatus(1));
    assert.equal(client.state, "open");
    assert.deepEqual(log.states, ["open"]);
  });

  test('after a drop: "reconnecting", and "open" again only with the new connection\'s first status', async () => {
    const { client, log } = start();
    const first = await openSocket(client, 1);
    stubRandom(0);
    first.drop(1006);
    assert.equal(client.state, "reconnecting");
    await advance(0);
    const second = env.lastSocket;
    assert.notEqual(second, first);
    second.accept();
    assert.equal(client.state, "reconnecting");
    second.receive(makeStatus(1));
    assert.equal(client.state, "open");
    assert.deepEqual(log.states, ["open", "reconnecting", "open"]);
  });
});

describe("versions", () => {
  useBrowser();

  test("status fires only for a higher version; equal and lower are dropped; client.status is the newest", async () => {
    const { client, log } = start();
    const socket = await openSocket(client, 5);
    const v7 = makeStatus(7, { can_complete: true });
    socket.receive(makeStatus(5, { wizard_complete: true }));
    socket.receive(makeStatus(3));
    socket.receive(v7);
    socket.receive(makeStatus(6));
    socket.receive(makeStatus(7, { wizard_complete: true }));
    assert.deepEqual(log.statuses, [5, 7]);
    assert.deepEqual(client.status, v7);
    assert.equal(client.status.wizard_complete, false, "the duplicate of 7 did not replace it");
  });

  test("a reconnect's first status with a version already seen opens the state but fires no status", async () => {
    const { client, log } = start();
    const socket = await openSocket(client, 4);
    stubRandom(0);
    socket.drop(1012);
    await advance(0);
    env.lastSocket.accept();
    env.lastSocket.receive(makeStatus(4));
    assert.equal(client.state, "open");
    assert.deepEqual(log.statuses, [4]);
    env.lastSocket.receive(makeStatus(8));
    assert.deepEqual(log.statuses, [4, 8]);
  });

  test("on() returns an unsubscribe function that removes only that listener", async () => {
    const { client } = start();
    const seenByA = [];
    const seenByB = [];
    const offA = client.on("status", (status) => seenByA.push(status.version));
    client.on("status", (status) => seenByB.push(status.version));
    const socket = await openSocket(client, 1);
    offA();
    socket.receive(makeStatus(2));
    assert.deepEqual(seenByA, [1]);
    assert.deepEqual(seenByB, [1, 2]);
  });
});

describe("close codes and credentials", () => {
  useBrowser();

  test("4401: a fresh ticket at once (no delay), then the next 4401 waits a backoff delay", async () => {
    const ticket = tickets();
    const { client } = start({ ticket });
    stubRandom(0.5);
    await flush();
    env.lastSocket.accept();
    env.lastSocket.drop(4401);
    await flush(); // no time passes
    assert.equal(ticket.calls, 2);
    assert.equal(env.sockets.length, 2);
    assert.equal(ticketParam(env.lastSocket), "tk-2");
    env.lastSocket.drop(4401);
    await flush();
    assert.equal(ticket.calls, 2, "no ticket call before the backoff delay");
    assert.equal(client.state, "reconnecting");
    await advance(249);
    assert.equal(env.sockets.length, 2);
    await advance(1);
    assert.equal(ticket.calls, 3);
    assert.equal(env.sockets.length, 3);
  });

  test('three consecutive 4401 closes: "unauthorized" and no attempt ever after', async () => {
    const ticket = tickets();
    const { client, log } = start({ ticket });
    for (let i = 0; i < 3; i++) {
      await advance(20000);
      env.lastSocket.drop(4401);
    }
    assert.equal(client.state, "unauthorized");
    assert.equal(log.states.at(-1), "unauthorized");
    await advance(600000, 10000);
    env.goOffline();
    env.goOnline();
    env.setHidden(true);
    env.setHidden(false);
    client.refresh();
    await advance(60000, 10000);
    assert.equal(env.sockets.length, 3);
    assert.equal(ticket.calls, 3);
  });

  test("4401 closes separated by a delivered status are not consecutive", async () => {
    const ticket = tickets();
    const { client } = start({ ticket });
    stubRandom(0);
    await flush();
    env.lastSocket.drop(4401);
    await advance(0);
    env.lastSocket.drop(4401);
    await advance(0);
    await openSocket(client, 1);
    env.lastSocket.drop(4401);
    await flush();
    assert.notEqual(client.state, "unauthorized");
    assert.equal(ticket.calls, 4, "counted as a first 4401 again: a fresh ticket at once");
    assert.equal(env.sockets.length, 4);
  });

  test('a ticket call that throws {status: 401}: "unauthorized" at once, no socket', async () => {
    let calls = 0;
    const { client } = start({ ticket: async () => { calls++; throw new CredentialError("signed out", 401); } });
    await flush();
    assert.equal(client.state, "unauthorized");
    await advance(600000, 10000);
    assert.equal(calls, 1);
    assert.equal(env.sockets.length, 0);
  });

  test("a ticket call that throws {status: 403} counts as a 4401 close (at once, backoff, then unauthorized)", async () => {
    let calls = 0;
    const { client } = start({ ticket: async () => { calls++; throw Object.assign(new Error("no"), { status: 403 }); } });
    stubRandom(0.5);
    await flush();
    assert.equal(calls, 2, "the second call came at once");
    assert.equal(client.state, "reconnecting");
    await advance(249);
    assert.equal(calls, 2);
    await advance(1);
    assert.equal(calls, 3);
    assert.equal(client.state, "unauthorized");
    await advance(600000, 10000);
    assert.equal(calls, 3);
    assert.equal(env.sockets.length, 0);
  });

  test("a ticket call that throws {status: 429, retryAfter: 7} waits exactly 7 s", async () => {
    let calls = 0;
    const ticket = async () => {
      calls++;
      if (calls === 1) throw new CredentialError("slow down", 429, 7);
      return "fresh";
    };
    start({ ticket });
    stubRandom(0); // a backoff would retry at once
    await flush();
    assert.equal(calls, 1);
    await advance(6900);
    assert.equal(calls, 1, "no attempt at 6.9 s");
    assert.equal(env.sockets.length, 0);
    await advance(100);
    assert.equal(calls, 2, "the attempt at 7 s");
    assert.equal(env.sockets.length, 1);
    assert.equal(ticketParam(env.lastSocket), "fresh");
  });

  test('4403: "forbidden" and nothing more, whatever happens', async () => {
    const ticket = tickets();
    const { client } = start({ ticket });
    const socket = await openSocket(client);
    socket.drop(4403);
    assert.equal(client.state, "forbidden");
    env.goOffline();
    env.goOnline();
    env.setHidden(true);
    env.setHidden(false);
    await advance(600000, 10000);
    assert.equal(env.sockets.length, 1);
    assert.equal(ticket.calls, 1);
    assert.equal(client.state, "forbidden");
  });

  test("4429: waits the cap, 20 s, not a jittered delay", async () => {
    const { client } = start();
    const socket = await openSocket(client);
    stubRandom(0);
    assert.deepEqual(env.timeoutsDuring(() => socket.drop(4429)), [20000]);
    assert.equal(client.state, "reconnecting");
    await advance(19999);
    assert.equal(env.sockets.length, 1);
    await advance(1);
    assert.equal(env.sockets.length, 2);
  });

  test("1012 (deploy): reconnects after a jittered delay within [0, 500] ms", async () => {
    const { client } = start();
    const delays = [];
    for (let i = 0; i < 100; i++) {
      const socket = await openSocket(client, i + 1);
      const [delay] = env.timeoutsDuring(() => socket.drop(1012));
      delays.push(delay);
      assert.equal(client.state, "reconnecting");
      const count = env.sockets.length;
      mock.timers.tick(delay);
      await flush();
      assert.equal(env.sockets.length, count + 1);
    }
    assert.ok(Math.min(...delays) >= 0 && Math.max(...delays) <= 500, `${Math.min(...delays)}..${Math.max(...delays)}`);
    assert.ok(Math.max(...delays) - Math.min(...delays) > 250, "the delays are jittered");
  });

  test('close(): "closed", the socket closed, no attempt ever after even on online/visibility events', async () => {
    const ticket = tickets();
    const { client, log } = start({ ticket });
    const socket = await openSocket(client);
    client.close();
    assert.equal(client.state, "closed");
    assert.equal(log.states.at(-1), "closed");
    assert.equal(socket.closeCalls.length, 1);
    assert.equal(socket.readyState, 2);
    socket.drop(1000); // its close event arrives later: ignored
    env.goOffline();
    env.goOnline();
    env.setHidden(true);
    env.setHidden(false);
    client.refresh();
    client.connect();
    await advance(3600000, 60000);
    assert.equal(env.sockets.length, 1);
    assert.equal(ticket.calls, 1);
    assert.equal(client.state, "closed");
    assert.deepEqual(socket.sent, []);
  });

  test("close() while a retry is pending or a ticket call is under way: no socket afterwards", async () => {
    const { client } = start();
    const socket = await openSocket(client);
    socket.drop(1006);
    client.close();
    await advance(60000, 1000);
    assert.equal(env.sockets.length, 1);

    let resolveTicket;
    const late = start({ ticket: () => new Promise((resolve) => { resolveTicket = resolve; }) });
    await flush();
    late.client.close();
    resolveTicket("too-late");
    await advance(60000, 1000);
    assert.equal(env.sockets.length, 1);
    assert.equal(late.client.state, "closed");
  });

  test("a ticket for every attempt, never reused, URL-encoded in ?ticket=", async () => {
    let calls = 0;
    const ticket = async () => `t/${++calls}+&=?`;
    start({ ticket });
    stubRandom(0);
    for (let i = 0; i < 5; i++) {
      await advance(0);
      env.lastSocket.drop(1006);
    }
    await advance(0);
    assert.equal(env.sockets.length, 6);
    assert.equal(calls, 6);
    const values = env.sockets.map(ticketParam);
    assert.deepEqual(values, [1, 2, 3, 4, 5, 6].map((n) => `t/${n}+&=?`));
    assert.equal(env.sockets[0].url, `${WS_URL}?ticket=${encodeURIComponent("t/1+&=?")}`);
  });

  test("token option: called before every attempt and sent as ?token= (string or promise)", async () => {
    let calls = 0;
    start({ token: () => (++calls % 2 ? `jwt.${calls}` : Promise.resolve(`jwt.${calls}`)) });
    stubRandom(0);
    for (let i = 0; i < 2; i++) { // two failed handshakes: no poll (which calls the token too) yet
      await advance(0);
      env.lastSocket.drop(1006);
    }
    await advance(0);
    assert.equal(calls, 3);
    assert.deepEqual(env.sockets.map((socket) => socket.url), [1, 2, 3].map((n) => `${WS_URL}?token=jwt.${n}`));
  });

  test("neither ticket nor token: the plain URL (the session cookie authenticates)", async () => {
    start();
    await flush();
    assert.equal(env.lastSocket.url, WS_URL);
  });

  test("the default URL follows the page: wss on https, ws on http", async () => {
    clients.push(new WizardStatusClient());
    await flush();
    assert.equal(env.lastSocket.url, "wss://app.example.test/ws/wizard-status/");
    globalThis.location = { protocol: "http:", host: "localhost:8000" };
    clients.push(new WizardStatusClient());
    await flush();
    assert.equal(env.lastSocket.url, "ws://localhost:8000/ws/wizard-status/");
  });

  test("autoConnect: false makes no socket until connect(), and connect() twice makes one", async () => {
    const ticket = tickets();
    const { client } = start({ ticket, autoConnect: false });
    await advance(60000, 1000);
    assert.equal(env.sockets.length, 0);
    assert.equal(ticket.calls, 0);
    client.connect();
    client.connect();
    await flush();
    assert.equal(env.sockets.length, 1);
    assert.equal(ticket.calls, 1);
  });
});

describe("liveness", () => {
  useBrowser();

  test('no frame for 25 s sends {"type":"ping"}; any frame restarts the 25 s', async () => {
    const { client } = start();
    const socket = await openSocket(client);
    await advance(20000);
    socket.receive({ type: "pong", timestamp: "2025-10-22T12:34:56.789Z" });
    await advance(24999);
    assert.deepEqual(socket.sent, []);
    await advance(1);
    assert.deepEqual(socket.frames, [{ type: "ping" }]);
    assert.equal(socket.sent[0], '{"type":"ping"}');
  });

  test("no frame 10 s after the ping: closes the socket and reconnects without waiting for a close event", async () => {
    const { client } = start();
    const socket = await openSocket(client);
    stubRandom(0.5);
    await advance(25000);
    assert.deepEqual(socket.frames, [{ type: "ping" }]);
    await advance(9999);
    assert.deepEqual(socket.closeCalls, []);
    assert.equal(client.state, "open");
    await advance(1);
    assert.equal(socket.closeCalls.length, 1, "the client closed the dead socket");
    assert.equal(client.state, "reconnecting");
    assert.equal(env.sockets.length, 1);
    await advance(249);
    assert.equal(env.sockets.length, 1);
    await advance(1);
    assert.equal(env.sockets.length, 2, "a new socket after the (reset) backoff delay");
  });

  test("a frame within 10 s of the ping keeps the socket", async () => {
    const { client } = start();
    const socket = await openSocket(client);
    await advance(25000);
    await advance(5000);
    socket.receive({ type: "pong", timestamp: "2025-10-22T12:34:56.789Z" });
    await advance(24999);
    assert.deepEqual(socket.closeCalls, []);
    assert.deepEqual(socket.frames, [{ type: "ping" }]);
    await advance(1);
    assert.deepEqual(socket.frames, [{ type: "ping" }, { type: "ping" }]);
    assert.equal(client.state, "open");
    assert.equal(env.sockets.length, 1);
  });
});

describe("network and visibility", () => {
  useBrowser();

  test('offline from the start: no attempts ("offline"); the online event makes one at once', async () => {
    const ticket = tickets();
    env.navigator.onLine = false;
    const { client } = start({ ticket });
    await advance(60000, 1000);
    assert.equal(client.state, "offline");
    assert.equal(env.sockets.length, 0);
    assert.equal(ticket.calls, 0);
    env.goOnline();
    await flush();
    assert.equal(ticket.calls, 1);
    assert.equal(env.sockets.length, 1);
  });

  test("offline during a backoff: no attempt when the delay passes; online: an attempt at once", async () => {
    const { client } = start();
    const socket = await openSocket(client);
    socket.drop(1006);
    env.goOffline();
    assert.equal(client.state, "offline");
    await advance(120000, 1000);
    assert.equal(env.sockets.length, 1);
    assert.equal(client.state, "offline");
    env.goOnline();
    await flush();
    assert.equal(env.sockets.length, 2);
  });

  test("the online event while a backoff delay runs makes the attempt at once", async () => {
    const { client } = start();
    const socket = await openSocket(client);
    stubRandom(0.99);
    assert.deepEqual(env.timeoutsDuring(() => socket.drop(1006)), [495]);
    env.goOnline(); // no offline before: the browser just says the network is (still) there
    await flush();
    assert.equal(env.sockets.length, 2, "no wait for the 495 ms");
  });

  test("online and visible events while a ticket call is under way do not fetch a second ticket", async () => {
    let release;
    let calls = 0;
    const ticket = () => { calls += 1; return new Promise((resolve) => { release = () => resolve(`tk-${calls}`); }); };
    const { client } = start({ ticket });
    await flush();
    env.goOnline();
    env.setHidden(false);
    client.refresh();
    await flush();
    assert.equal(calls, 1);
    release();
    await flush();
    assert.equal(env.sockets.length, 1);
    assert.equal(ticketParam(env.lastSocket), "tk-1");
  });

  test("offline while the ticket call is under way: no socket until online, then a fresh ticket", async () => {
    let release;
    const ticket = tickets();
    const slow = () => new Promise((resolve) => { release = () => resolve(ticket()); });
    const { client } = start({ ticket: slow });
    await flush();
    env.goOffline();
    release();
    await flush();
    assert.equal(env.sockets.length, 0);
    assert.equal(client.state, "offline");
    env.goOnline();
    await flush();
    release();
    await flush();
    assert.equal(env.sockets.length, 1);
    assert.equal(ticketParam(env.lastSocket), "tk-2");
  });

  test('before the first status ever, retries say "reconnecting", not "connecting" again', async () => {
    const { client, log } = start();
    await failHandshakes(2);
    await advance(2000, 100);
    assert.deepEqual(log.states, ["reconnecting"]);
    assert.equal(client.state, "reconnecting");
  });

  test("an open socket is kept when offline fires (left to the liveness check)", async () => {
    const { client } = start();
    const socket = await openSocket(client);
    env.goOffline();
    assert.equal(client.state, "open");
    assert.deepEqual(socket.closeCalls, []);
    assert.equal(socket.readyState, 1);
    await advance(25000);
    assert.deepEqual(socket.frames, [{ type: "ping" }], "the liveness check still runs");
  });

  test("hidden after a drop: no reconnect even after the backoff delay; visible: an attempt at once", async () => {
    const ticket = tickets();
    const { client } = start({ ticket });
    const socket = await openSocket(client);
    env.setHidden(true);
    socket.drop(1006);
    await advance(120000, 1000);
    assert.equal(env.sockets.length, 1);
    assert.equal(ticket.calls, 1);
    env.setHidden(false);
    await flush();
    assert.equal(ticket.calls, 2);
    assert.equal(env.sockets.length, 2);
  });

  test("a page opened hidden connects once, but retries only when visible", async () => {
    env.document.hidden = true;
    start();
    await flush();
    assert.equal(env.sockets.length, 1, "the first connection is not a retry");
    env.lastSocket.drop(1006);
    await advance(120000, 1000);
    assert.equal(env.sockets.length, 1, "no reconnect attempt while hidden");
    env.setHidden(false);
    await flush();
    assert.equal(env.sockets.length, 2);
  });

  test('visible again (or online) while open sends {"type":"refresh"}; hidden alone sends nothing', async () => {
    const { client } = start();
    const socket = await openSocket(client);
    env.setHidden(true);
    assert.deepEqual(socket.sent, []);
    env.setHidden(false);
    assert.deepEqual(socket.frames, [{ type: "refresh" }]);
    env.goOnline();
    assert.deepEqual(socket.frames, [{ type: "refresh" }, { type: "refresh" }]);
    assert.equal(env.sockets.length, 1);
  });

  test('refresh() on an open socket sends {"type":"refresh"}', async () => {
    const { client } = start();
    const socket = await openSocket(client);
    client.refresh();
    assert.equal(socket.sent.at(-1), '{"type":"refresh"}');
  });
});

describe("HTTP fallback", () => {
  useBrowser();

  test('3 consecutive failed handshakes: "polling" and a fetch of the status endpoint at once, with the cookie', async () => {
    const { client } = start();
    await failHandshakes(2);
    assert.equal(env.fetchCalls.length, 0);
    assert.equal(client.state, "reconnecting");
    mock.timers.tick(20000);
    await flush();
    env.lastSocket.drop(1006); // the third
    assert.equal(client.state, "polling");
    assert.equal(env.fetchCalls.length, 1, "fetched at once");
    const { url, init } = env.fetchCalls[0];
    assert.equal(new URL(url).origin, "https://app.example.test");
    assert.equal(new URL(url).pathname, POLL_PATH);
    assert.equal(init.credentials, "same-origin");
    assert.equal(init.method ?? "GET", "GET");
    assert.equal(new Headers(init.headers).get("Authorization"), null);
  });

  test("polls every 5–10 s with jitter", async () => {
    start();
    await failHandshakes(3);
    await flush();
    const delays = [];
    for (let i = 0; i < 30; i++) {
      const delay = env.timeouts.at(-1); // the poll timer, set once the last poll answered
      assert.ok(delay >= 5000 && delay <= 10000, `poll delay ${delay}`);
      delays.push(delay);
      const count = env.fetchCalls.length;
      mock.timers.tick(delay - 1);
      await flush();
      assert.equal(env.fetchCalls.length, count, "no poll before its delay");
      mock.timers.tick(1.001);
      await flush();
      assert.equal(env.fetchCalls.length, count + 1, "a poll when its delay has passed");
    }
    assert.ok(Math.max(...delays) - Math.min(...delays) > 2000, "the interval is jittered");
    assert.equal(env.sockets.length, 4, "the socket attempt that never answers is still under way");
  });

  test("polled statuses are delivered with the same version rule", async () => {
    const answers = [3, 3, 2, 5, 4];
    env.respond = () => jsonResponse(makeStatus(answers.length > 1 ? answers.shift() : answers[0]));
    const { client, log } = start();
    await failHandshakes(3);
    await advance(120000, 1000);
    assert.ok(env.fetchCalls.length >= 6);
    assert.deepEqual(log.statuses, [3, 5]);
    assert.equal(client.status.version, 5);
    assert.equal(client.state, "polling");
  });

  test("socket attempts continue while polling; polling stops once a socket delivers a status", async () => {
    const { client, log } = start();
    const delay = await failHandshakes(3);
    mock.timers.tick(delay);
    await flush();
    assert.equal(env.sockets.length, 4, "the socket is still tried");
    assert.equal(client.state, "polling", "a socket attempt while polling does not leave polling");
    const socket = env.lastSocket;
    socket.accept();
    const polled = env.fetchCalls.length;
    await advance(10100);
    assert.ok(env.fetchCalls.length > polled, "a handshake alone does not stop polling");
    assert.equal(client.state, "polling");
    socket.receive(makeStatus(2));
    assert.equal(client.state, "open");
    assert.deepEqual(log.statuses, [2]);
    const calls = env.fetchCalls.length;
    await advance(120000, 1000);
    assert.equal(env.fetchCalls.length, calls, "no poll after the socket is open");
  });

  test("the failed-handshake count is consecutive: a delivered status resets it", async () => {
    const { client } = start();
    stubRandom(0);
    await failHandshakes(2);
    await advance(0);
    const socket = await openSocket(client);
    socket.drop(1006); // after a status: not a failed handshake
    await advance(0);
    await failHandshakes(2);
    await advance(0);
    assert.equal(env.fetchCalls.length, 0);
    env.lastSocket.drop(1006);
    assert.equal(env.fetchCalls.length, 1);
    assert.equal(client.state, "polling");
  });

  test("an auth close (4401) does not count as a failed handshake", async () => {
    const ticket = tickets();
    const { client } = start({ ticket });
    stubRandom(0);
    await failHandshakes(1);
    await advance(0);
    env.lastSocket.drop(4401); // a fresh ticket at once
    await advance(0);
    env.lastSocket.drop(4401); // then backoff
    await advance(0);
    env.lastSocket.drop(1006); // the second failed handshake only
    await advance(0);
    assert.equal(env.fetchCalls.length, 0);
    assert.notEqual(client.state, "polling");
    assert.equal(env.sockets.length, 5);
    assert.equal(ticket.calls, 5);
  });

  test("with the token option the poll sends Authorization: Bearer <token>", async () => {
    let calls = 0;
    start({ token: () => `jwt.${++calls}` });
    await failHandshakes(3);
    await flush();
    assert.equal(env.fetchCalls.length, 1);
    assert.equal(calls, 4, "a fresh token for the poll too");
    assert.equal(new Headers(env.fetchCalls[0].init.headers).get("Authorization"), "Bearer jwt.4");
  });

  test("fetchOptions are used for the poll's request", async () => {
    start({ fetchOptions: { credentials: "include", headers: { "X-Requested-With": "fetch" } } });
    await failHandshakes(3);
    const { init } = env.fetchCalls[0];
    assert.equal(init.credentials, "include");
    assert.equal(new Headers(init.headers).get("X-Requested-With"), "fetch");
  });
});

describe("frames", () => {
  useBrowser();

  test("an error frame fires error only, never status", async () => {
    const { client, log } = start();
    await flush();
    env.lastSocket.accept();
    const early = { type: "error", code: "invalid_json", detail: "Not JSON." };
    env.lastSocket.receive(early);
    assert.equal(client.state, "connecting", "an error frame does not open");
    env.lastSocket.receive(makeStatus(1));
    const frame = { type: "error", code: "rate_limited", detail: "Too many refreshes.", retry_after: 4 };
    env.lastSocket.receive(frame);
    assert.deepEqual(log.errors, [early, frame]);
    assert.deepEqual(log.statuses, [1]);
    assert.equal(client.status.version, 1);
    assert.equal(client.state, "open");
  });

  test("a pong, invalid JSON, a status without a version and non-objects are ignored", async () => {
    const { client, log } = start();
    await flush();
    const socket = env.lastSocket;
    socket.accept();
    const junk = [
      { type: "pong", timestamp: "2025-10-22T12:34:56.789Z" }, "not json {", { ...makeStatus(1), version: undefined },
      { ...makeStatus(2), version: "2" }, "null", "[1,2]", "42", '"wizard_status"', { type: "unknown" },
    ];
    for (const frame of junk) socket.receive(frame);
    assert.equal(client.state, "connecting");
    assert.equal(client.status, null);
    socket.receive(makeStatus(1));
    for (const frame of junk) socket.receive(frame);
    assert.deepEqual(log.statuses, [1]);
    assert.deepEqual(log.errors, []);
    assert.equal(client.status.version, 1);
  });
});

describe("fetchTicket()", () => {
  useBrowser();

  test("POSTs /api/v1/realtime/ticket with the cookie and X-CSRFToken from csrftoken; returns the ticket", async () => {
    env.document.cookie = "sessionid=abc; csrftoken=cs%2Brf; theme=dark";
    env.respond = () => jsonResponse({ ticket: "tk-123", expires_in: 60 }, 201);
    assert.equal(await fetchTicket(), "tk-123");
    assert.equal(env.fetchCalls.length, 1);
    const { url, init } = env.fetchCalls[0];
    assert.equal(url, "/api/v1/realtime/ticket");
    assert.equal(init.method, "POST");
    assert.equal(init.credentials, "same-origin");
    assert.equal(new Headers(init.headers).get("X-CSRFToken"), "cs+rf");
  });

  test("passes the headers given (Bearer) and fetches a new ticket on every call", async () => {
    let n = 0;
    env.respond = () => jsonResponse({ ticket: `tk-${++n}`, expires_in: 60 }, 201);
    const ticket = () => fetchTicket({ headers: { Authorization: "Bearer jwt" } });
    assert.equal(await ticket(), "tk-1");
    assert.equal(await ticket(), "tk-2");
    assert.equal(new Headers(env.fetchCalls[1].init.headers).get("Authorization"), "Bearer jwt");
  });

  test("a 401 answer throws an error with status 401", async () => {
    env.respond = () => jsonResponse({ detail: "Authentication required." }, 401);
    await assert.rejects(fetchTicket, (error) => {
      assert.ok(error instanceof CredentialError);
      assert.equal(error.status, 401);
      assert.equal(error.retryAfter, undefined);
      return true;
    });
  });

  test("a 429 answer throws an error with status 429 and retryAfter from the Retry-After header", async () => {
    env.respond = () => new Response("slow down", { status: 429, headers: { "Retry-After": "7" } });
    await assert.rejects(fetchTicket, (error) => error.status === 429 && error.retryAfter === 7);
    env.respond = () => jsonResponse({ detail: "slow down", retry_after: 9 }, 429, { "Retry-After": "9" });
    await assert.rejects(fetchTicket, (error) => error.status === 429 && error.retryAfter === 9);
  });

  test("as the client's ticket: a 429 with Retry-After: 7 waits exactly 7 s, then a fresh ticket", async () => {
    let n = 0;
    env.respond = () => (++n === 1
      ? jsonResponse({ detail: "slow down", retry_after: 7 }, 429, { "Retry-After": "7" })
      : jsonResponse({ ticket: `tk-${n}`, expires_in: 60 }, 201));
    start({ ticket: fetchTicket });
    await flush();
    assert.equal(n, 1);
    await advance(6900);
    assert.equal(n, 1);
    assert.equal(env.sockets.length, 0);
    await advance(100);
    assert.equal(n, 2);
    assert.equal(env.sockets.length, 1);
    assert.equal(ticketParam(env.lastSocket), "tk-2");
  });
});

describe("tabs (Web Locks + BroadcastChannel)", () => {
  useBrowser({ tabs: true });
  const settle = () => flush(12);

  test("two clients with the same url: one socket in all; both get every status", async () => {
    const a = start({ ticket: tickets("a") });
    await settle();
    const b = start({ ticket: tickets("b") });
    await settle();
    assert.equal(env.sockets.length, 1);
    assert.equal(ticketParam(env.lastSocket), "a-1");
    const socket = env.lastSocket;
    socket.accept();
    socket.receive(makeStatus(1));
    socket.receive(makeStatus(1));
    socket.receive(makeStatus(2));
    await settle();
    assert.deepEqual(a.log.statuses, [1, 2]);
    assert.deepEqual(b.log.statuses, [1, 2]);
    assert.equal(b.client.status.version, 2);
    assert.equal(env.sockets.length, 1);
  });

  test("a client joining later gets the current status and state at once", async () => {
    const a = start();
    await openSocket(a.client, 4);
    const b = start();
    await settle();
    assert.equal(b.client.status.version, 4);
    assert.equal(b.client.state, "open");
    assert.equal(env.sockets.length, 1);
  });

  test("a follower's refresh() reaches the leader's socket as a refresh frame", async () => {
    const a = start();
    const socket = await openSocket(a.client);
    const b = start();
    await settle();
    b.client.refresh();
    await settle();
    assert.deepEqual(socket.frames, [{ type: "refresh" }]);
  });

  test("a follower's state mirrors the leader's", async () => {
    const a = start();
    await settle();
    const b = start();
    await settle();
    assert.equal(b.client.state, "connecting");
    env.lastSocket.accept();
    env.lastSocket.receive(makeStatus(1));
    await settle();
    assert.equal(b.client.state, "open");
    env.lastSocket.drop(1006);
    await settle();
    assert.equal(a.client.state, "reconnecting");
    assert.equal(b.client.state, "reconnecting");
    assert.deepEqual(b.log.states, ["open", "reconnecting"]);
  });

  test("the leader's close(): a follower takes over with its own ticket function and keeps receiving", async () => {
    const ticketA = tickets("a");
    const ticketB = tickets("b");
    const a = start({ ticket: ticketA });
    const first = await openSocket(a.client, 1);
    const b = start({ ticket: ticketB });
    await settle();
    assert.equal(ticketB.calls, 0);
    a.client.close();
    await settle(); // no time passes: well within 2 s
    assert.equal(first.closeCalls.length, 1);
    assert.equal(env.sockets.length, 2);
    assert.equal(ticketA.calls, 1);
    assert.equal(ticketB.calls, 1);
    assert.equal(ticketParam(env.lastSocket), "b-1");
    assert.notEqual(b.client.state, "closed");
    env.lastSocket.accept();
    env.lastSocket.receive(makeStatus(2));
    assert.deepEqual(b.log.statuses, [1, 2]);
    assert.equal(b.client.state, "open");
    assert.deepEqual(a.log.statuses, [1]);
  });

  test("three tabs: each leader's close hands the socket to exactly one other tab", async () => {
    const a = start({ ticket: tickets("a") });
    await openSocket(a.client, 1);
    const b = start({ ticket: tickets("b") });
    const c = start({ ticket: tickets("c") });
    await settle();
    a.client.close();
    await settle();
    assert.equal(env.sockets.length, 2);
    assert.equal(ticketParam(env.lastSocket), "b-1");
    env.lastSocket.accept();
    env.lastSocket.receive(makeStatus(2));
    await settle();
    assert.deepEqual(c.log.statuses, [1, 2]);
    b.client.close();
    await settle();
    assert.equal(env.sockets.length, 3);
    assert.equal(ticketParam(env.lastSocket), "c-1");
  });

  test("a follower's close() leaves the leader's socket alone", async () => {
    const a = start();
    const socket = await openSocket(a.client, 1);
    const b = start();
    await settle();
    b.client.close();
    await settle();
    assert.equal(b.client.state, "closed");
    assert.equal(a.client.state, "open");
    assert.deepEqual(socket.closeCalls, []);
    socket.receive(makeStatus(2));
    await settle();
    assert.deepEqual(b.log.statuses, [1]);
    assert.equal(env.sockets.length, 1);
  });

  test("clients with different urls do not share", async () => {
    start();
    start({ url: "wss://app.example.test/ws/wizard-status/?board=2" });
    await settle();
    assert.equal(env.sockets.length, 2);
    assert.deepEqual(env.sockets.map((s) => s.url).sort(), [WS_URL, `${WS_URL}?board=2`]);
  });

  test("shareAcrossTabs: false: each client has its own socket and ticket", async () => {
    start({ ticket: tickets("a"), shareAcrossTabs: false });
    start({ ticket: tickets("b"), shareAcrossTabs: false });
    await settle();
    assert.deepEqual(env.sockets.map(ticketParam).sort(), ["a-1", "b-1"]);
  });

  test("the leader's page hidden but a follower's visible: the leader still reconnects after a drop", async () => {
    const a = start();
    const socket = await openSocket(a.client);
    start(); // announces itself visible
    await settle();
    env.document.hidden = true; // only the leader's page went to the background
    stubRandom(0.5);
    socket.drop(1006);
    await advance(249);
    assert.equal(env.sockets.length, 1);
    await advance(1);
    assert.equal(env.sockets.length, 2);
  });

  test("a follower that was visible and then closed no longer keeps the hidden leader reconnecting", async () => {
    const a = start();
    const socket = await openSocket(a.client);
    const b = start(); // announces itself visible
    await settle();
    b.client.close();
    await settle();
    env.document.hidden = true;
    socket.drop(1006);
    await advance(60000, 1000);
    assert.equal(env.sockets.length, 1, "no reconnect: no visible page is left");
  });

  test("an error frame reaches the follower's error event, never its status event", async () => {
    const a = start();
    const socket = await openSocket(a.client, 1);
    const b = start();
    await settle();
    const frame = { type: "error", code: "rate_limited", detail: "Too many refreshes.", retry_after: 3 };
    socket.receive(frame);
    await settle();
    assert.deepEqual(b.log.errors, [frame]);
    assert.deepEqual(b.log.statuses, [1]);
  });

  test("the leader's page hidden and the follower's too: no reconnect while hidden", async () => {
    const a = start();
    const socket = await openSocket(a.client);
    env.document.hidden = true;
    start(); // announces itself hidden
    await settle();
    socket.drop(1006);
    await advance(60000, 1000);
    assert.equal(env.sockets.length, 1);
  });
});

describe("labels, direction and size", () => {
  test("LABELS: en, tr and ar with exactly the six requirements, the guide's strings verbatim", () => {
    assert.deepEqual(Object.keys(LABELS).sort(), ["ar", "en", "tr"]);
    assert.deepEqual(REQUIREMENTS, [
      "first_name", "last_name", "phone_number", "business_type", "manual_prompt", "channel_connected",
    ]);
    for (const lang of ["en", "tr", "ar"]) assert.deepEqual(Object.keys(LABELS[lang]), [...REQUIREMENTS]);
    assert.deepEqual({ ...LABELS.en }, {
      first_name: "First Name", last_name: "Last Name", phone_number: "Phone Number",
      business_type: "Business Type", manual_prompt: "Manual Prompt", channel_connected: "Channel Connected",
    });
    assert.deepEqual({ ...LABELS.tr }, {
      first_name: "Ad", last_name: "Soyad", phone_number: "Telefon Numarası",
      business_type: "İş Türü", manual_prompt: "Manuel İstem", channel_connected: "Kanal Bağlı",
    });
    assert.deepEqual({ ...LABELS.ar }, {
      first_name: "الاسم الأول", last_name: "اسم العائلة", phone_number: "رقم الهاتف",
      business_type: "نوع العمل", manual_prompt: "الأمر اليدوي", channel_connected: "القناة متصلة",
    });
    assert.equal(LABELS.tr.business_type, "İş Türü");
    assert.equal(LABELS.ar.first_name, "الاسم الأول");
  });

  test('textDirection: "rtl" for ar and ar-EG, "ltr" for en and tr', () => {
    assert.equal(textDirection("ar"), "rtl");
    assert.equal(textDirection("ar-EG"), "rtl");
    assert.equal(textDirection("en"), "ltr");
    assert.equal(textDirection("tr"), "ltr");
  });

  test("gzip -9 of wizard-status.js is at most 6 KB", () => {
    const size = gzipSync(readFileSync(SOURCE), { level: 9 }).length;
    assert.ok(size <= 6144, `${size} bytes gzipped`);
  });
});
