// Fakes of the browser APIs wizard-status.js reads from globals at call time.
// `installBrowser()` puts a fresh set on globalThis; `env.uninstall()` puts the originals back.
import { mock } from "node:test";

export const PAGE = { protocol: "https:", host: "app.example.test" };
export const WS_URL = "wss://app.example.test/ws/wizard-status/";

/** Lets pending promises, microtasks and fake BroadcastChannel deliveries run (real setImmediate). */
export async function flush(rounds = 6) {
  for (let i = 0; i < rounds; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** Advances the mocked clock by `ms`, letting async work run after each step. */
export async function advance(ms, step = 100) {
  let left = ms;
  while (left > 0) {
    const now = Math.min(step, left);
    mock.timers.tick(now);
    left -= now;
    await flush();
  }
  if (ms === 0) {
    mock.timers.tick(0); // timers due now (a delay of 0)
    await flush();
  }
}

export function makeStatus(version, extra = {}) {
  return {
    type: "wizard_status", wizard_complete: false, can_complete: false,
    missing_fields: ["manual_prompt"],
    details: {
      first_name: true, last_name: true, phone_number: true, business_type: true,
      manual_prompt: false, channel_connected: true, instagram_connected: true, telegram_connected: false,
    },
    progress: { completed: 5, total: 6, percent: 83 },
    version, timestamp: "2025-10-22T12:34:56.789Z", ...extra,
  };
}

export class FakeEventTarget {
  constructor() {
    this.listeners = new Map();
  }

  addEventListener(type, listener) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(listener);
  }

  removeEventListener(type, listener) {
    this.listeners.get(type)?.delete(listener);
  }

  dispatch(type) {
    for (const listener of [...(this.listeners.get(type) || [])]) listener({ type, target: this });
  }

  listenerCount(type) {
    return this.listeners.get(type)?.size || 0;
  }
}

/** A WebSocket class whose instances the test plays the server for. */
export function makeWebSocketClass() {
  return class FakeWebSocket {
    static CONNECTING = 0;
    static OPEN = 1;
    static CLOSING = 2;
    static CLOSED = 3;
    static instances = [];

    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.sent = [];
      this.closeCalls = [];
      this.onopen = this.onmessage = this.onclose = this.onerror = null;
      FakeWebSocket.instances.push(this);
    }

    send(data) {
      if (this.readyState !== 1) throw new Error("InvalidStateError: send on a socket that is not open");
      this.sent.push(data);
    }

    close(code) {
      this.closeCalls.push(code);
      if (this.readyState < 2) this.readyState = 2;
    }

    /** Frames the client sent, parsed. */
    get frames() {
      return this.sent.map((data) => JSON.parse(data));
    }

    // --- the server's side ---

    accept() {
      this.readyState = 1;
      this.onopen?.({ type: "open" });
    }

    receive(frame) {
      this.onmessage?.({ data: typeof frame === "string" ? frame : JSON.stringify(frame) });
    }

    /** The server (or the network) closes the socket with `code`. */
    drop(code) {
      this.readyState = 3;
      this.onclose?.({ type: "close", code, wasClean: code !== 1006 });
    }
  };
}

/** Web Locks: exclusive, granted in request order, released when the callback's promise settles. */
export class FakeLockManager {
  constructor() {
    this.locks = new Map();
  }

  request(name, options, callback) {
    const lock = this.locks.get(name) || { held: false, queue: [] };
    this.locks.set(name, lock);
    return new Promise((resolve, reject) => {
      const entry = { callback, resolve, reject };
      const signal = options?.signal;
      if (signal?.aborted) return reject(new DOMException("aborted", "AbortError"));
      signal?.addEventListener("abort", () => {
        const at = lock.queue.indexOf(entry);
        if (at < 0) return; // already granted: aborting has no effect
        lock.queue.splice(at, 1);
        reject(new DOMException("aborted", "AbortError"));
      });
      lock.queue.push(entry);
      this._grant(name);
    });
  }

  _grant(name) {
    const lock = this.locks.get(name);
    if (lock.held || !lock.queue.length) return;
    const entry = lock.queue.shift();
    lock.held = true;
    const release = () => {
      lock.held = false;
      this._grant(name);
    };
    setImmediate(() => {
      Promise.resolve()
        .then(() => entry.callback({ name, mode: "exclusive" }))
        .then((value) => { release(); entry.resolve(value); }, (error) => { release(); entry.reject(error); });
    });
  }

  holder(name) {
    return this.locks.get(name)?.held || false;
  }
}

/** BroadcastChannel: delivers asynchronously to the other open instances of the same name. */
export function makeBroadcastChannelClass() {
  const open = new Set();
  return class FakeBroadcastChannel {
    static open = open;

    constructor(name) {
      this.name = name;
      this.onmessage = null;
      this.closed = false;
      open.add(this);
    }

    postMessage(data) {
      if (this.closed) throw new Error("InvalidStateError: channel is closed");
      const copy = structuredClone(data);
      for (const other of open) {
        if (other === this || other.name !== this.name) continue;
        setImmediate(() => {
          if (!other.closed) other.onmessage?.({ data: structuredClone(copy) });
        });
      }
    }

    close() {
      this.closed = true;
      open.delete(this);
    }
  };
}

const GLOBALS = ["WebSocket", "fetch", "navigator", "document", "window", "BroadcastChannel", "location"];

/**
 * Installs a fresh fake browser on globalThis. `tabs: true` adds Web Locks and BroadcastChannel
 * (clients in one test then behave like tabs of one browser); otherwise both are absent.
 * Also wraps the (mocked) setTimeout to record every delay in `env.timeouts`.
 */
export function installBrowser({ tabs = false } = {}) {
  const saved = new Map(GLOBALS.map((key) => [key, Object.getOwnPropertyDescriptor(globalThis, key)]));
  const WebSocket = makeWebSocketClass();
  const window = new FakeEventTarget();
  const document = new FakeEventTarget();
  document.hidden = false;
  document.cookie = "";
  const navigator = { onLine: true };
  if (tabs) navigator.locks = new FakeLockManager();
  const env = {
    WebSocket, window, document, navigator,
    sockets: WebSocket.instances,
    get lastSocket() {
      return WebSocket.instances.at(-1);
    },
    fetchCalls: [],
    /** (url, init) => Response | Promise<Response>; default: 503. */
    respond: () => new Response(JSON.stringify({ detail: "down" }), { status: 503 }),
    timeouts: [],
    /** Delays of the setTimeout calls `fn` makes synchronously. */
    timeoutsDuring(fn) {
      const from = env.timeouts.length;
      fn();
      return env.timeouts.slice(from);
    },
    goOffline() {
      navigator.onLine = false;
      window.dispatch("offline");
    },
    goOnline() {
      navigator.onLine = true;
      window.dispatch("online");
    },
    setHidden(hidden) {
      document.hidden = hidden;
      document.dispatch("visibilitychange");
    },
    uninstall() {
      globalThis.setTimeout = mockedSetTimeout;
      for (const [key, descriptor] of saved) {
        if (descriptor) Object.defineProperty(globalThis, key, descriptor);
        else delete globalThis[key];
      }
    },
  };
  const fetch = async (url, init = {}) => {
    env.fetchCalls.push({ url: String(url), init });
    return env.respond(String(url), init);
  };
  const values = {
    WebSocket, fetch, navigator, document, window, location: { ...PAGE },
    BroadcastChannel: tabs ? makeBroadcastChannelClass() : undefined,
  };
  for (const key of GLOBALS) {
    Object.defineProperty(globalThis, key, { value: values[key], writable: true, configurable: true, enumerable: true });
  }
  const mockedSetTimeout = globalThis.setTimeout;
  globalThis.setTimeout = (callback, delay, ...args) => {
    env.timeouts.push(delay);
    return mockedSetTimeout(callback, delay, ...args);
  };
  return env;
}

export function jsonResponse(body, status = 200, headers = {}) {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json", ...headers } });
}
