// Browser client of /ws/wizard-status/ (contract section 7). No dependencies.

export const REQUIREMENTS = Object.freeze([
  "first_name", "last_name", "phone_number", "business_type", "manual_prompt", "channel_connected",
]);

export const LABELS = Object.freeze({
  en: {
    first_name: "First Name", last_name: "Last Name", phone_number: "Phone Number",
    business_type: "Business Type", manual_prompt: "Manual Prompt", channel_connected: "Channel Connected",
  },
  tr: {
    first_name: "Ad", last_name: "Soyad", phone_number: "Telefon Numarası",
    business_type: "İş Türü", manual_prompt: "Manuel İstem", channel_connected: "Kanal Bağlı",
  },
  ar: {
    first_name: "الاسم الأول", last_name: "اسم العائلة", phone_number: "رقم الهاتف",
    business_type: "نوع العمل", manual_prompt: "الأمر اليدوي", channel_connected: "القناة متصلة",
  },
});

const RTL_LANGUAGES = new Set(["ar", "fa", "he", "ur", "ps", "sd", "ug", "yi", "dv", "ckb"]);

export function textDirection(lang) {
  return RTL_LANGUAGES.has(String(lang || "").toLowerCase().split(/[-_]/)[0]) ? "rtl" : "ltr";
}

export const CLOSE_CODES = Object.freeze({
  SERVICE_RESTART: 1012, UNAUTHORIZED: 4401, FORBIDDEN: 4403, TOO_MANY: 4429,
});

export const TIMING = Object.freeze({
  backoffBase: 500, backoffCap: 20000, pingAfter: 25000, deadAfter: 10000,
  pollMin: 5000, pollMax: 10000,
});

const FAILED_HANDSHAKES_BEFORE_POLLING = 3;
const UNAUTHORIZED_CLOSES_BEFORE_GIVING_UP = 3;
const OPEN = 1;

/** An answer of the ticket endpoint (or of a `ticket`/`token` callback) that was not a ticket. */
export class CredentialError extends Error {
  constructor(message, status, retryAfter) {
    super(message);
    this.name = "CredentialError";
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

function cookie(name) {
  const jar = globalThis.document?.cookie || "";
  for (const pair of jar.split(";")) {
    const [key, ...value] = pair.trim().split("=");
    if (key === name) return decodeURIComponent(value.join("="));
  }
  return "";
}

function retryAfterOf(response, body) {
  const seconds = Number(response.headers?.get?.("Retry-After") ?? body?.retry_after);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds : undefined;
}

/**
 * A ready `ticket` function: POSTs the ticket endpoint with the cookie (and its CSRF token)
 * or the headers given. `{ticket: fetchTicket}`, or `{ticket: () => fetchTicket({headers})}`.
 */
export async function fetchTicket(fetchOptions = {}, endpoint = "/api/v1/realtime/ticket") {
  const headers = { ...fetchOptions.headers };
  const csrf = cookie("csrftoken");
  if (csrf && !Object.keys(headers).some((key) => key.toLowerCase() === "x-csrftoken")) {
    headers["X-CSRFToken"] = csrf;
  }
  const response = await fetch(endpoint, {
    method: "POST", credentials: "same-origin", ...fetchOptions, headers,
  });
  const body = await response.json().catch(() => null);
  if (!response.ok || typeof body?.ticket !== "string") {
    throw new CredentialError(
      body?.detail || `ticket request answered ${response.status}`,
      response.status, retryAfterOf(response, body),
    );
  }
  return body.ticket;
}

function defaultUrl() {
  const where = globalThis.location;
  if (!where) throw new TypeError("WizardStatusClient: `url` is required outside a page");
  return `${where.protocol === "https:" ? "wss" : "ws"}://${where.host}/ws/wizard-status/`;
}

function pollUrlFor(socketUrl) {
  const url = new URL(socketUrl);
  url.protocol = url.protocol === "wss:" ? "https:" : "http:";
  url.pathname = "/api/v1/accounts/wizard-status";
  url.search = "";
  return url.href;
}

function isStatus(frame) {
  return frame?.type === "wizard_status" && Number.isSafeInteger(frame.version);
}

/** Live wizard status of the signed-in user: newest version wins, reconnects on its own. */
export class WizardStatusClient {
  constructor(options = {}) {
    this.url = new URL(options.url || defaultUrl()).href;
    this.status = null;
    this.state = "connecting";
    this._options = options;
    this._listeners = { status: new Set(), state: new Set(), error: new Set() };
    this._timers = new Map();
    this._visibleTabs = new Set();
    this._tabId = Math.random().toString(36).slice(2);
    this._running = false;
    this._closed = false;
    if (options.autoConnect !== false) this.connect();
  }

  on(event, listener) {
    const listeners = this._listeners[event];
    if (!listeners) throw new TypeError(`unknown event ${event}`);
    listeners.add(listener);
    return () => listeners.delete(listener);
  }

  connect() {
    if (this._closed || this._running) return;
    this._running = true;
    this._tried = false;
    this._attempt = 0;
    this._unauthorized = 0;
    this._failedHandshakes = 0;
    this._watchPage();
    const shared = this._options.shareAcrossTabs !== false
      && globalThis.navigator?.locks && typeof globalThis.BroadcastChannel === "function";
    if (!shared) return this._lead();
    const name = `wizard-status:${this.url}`;
    this._channel = new BroadcastChannel(name);
    this._channel.onmessage = (event) => this._onTabMessage(event.data || {});
    this._abandonLock = new AbortController();
    this._post({ kind: "hello" });
    this._announceVisibility();
    navigator.locks.request(name, { signal: this._abandonLock.signal }, () => new Promise((release) => {
      this._releaseLock = release;
      this._lead();
    })).catch(() => {});
  }

  refresh() {
    if (!this._running) return;
    if (!this._leading) return this._post({ kind: "refresh" });
    if (this._socket?.readyState === OPEN && this._opened) this._send({ type: "refresh" });
    else if (this.state === "polling") this._pollNow();
    else this._wake();
  }

  close() {
    if (this._closed) return;
    this._closed = true;
    this._stop("closed");
    for (const [target, type, handler] of this._pageHandlers || []) {
      target.removeEventListener(type, handler);
    }
  }

  // --- the leader: the one tab that holds the socket ---

  _lead() {
    if (!this._running) return this._releaseLock?.();
    this._leading = true;
    this._post({ kind: "leader" });
    this._tryNow();
  }

  _tryNow() {
    this._clearTimer("retry");
    this._waitingFor = null;
    if (!this._running || !this._leading) return;
    if (this._isOffline()) return this._waitFor("online", "offline");
    // The first connection of a page opened in the background is not a retry; later ones are.
    if (this._tried && this._isHidden()) return this._waitFor("visible");
    this._open(!this._tried);
    this._tried = true;
  }

  async _open(first) {
    const attempt = (this._attemptId = (this._attemptId || 0) + 1);
    this._setState(first && !this._everOpened ? "connecting" : this._waitingState());
    let url;
    this._fetching = true;
    try {
      url = await this._credentialUrl();
    } catch (error) {
      if (attempt === this._attemptId && this._running) this._credentialFailed(error);
      return;
    } finally {
      if (attempt === this._attemptId) this._fetching = false;
    }
    if (attempt !== this._attemptId || !this._running) return;
    if (this._isOffline()) return this._waitFor("online", "offline");
    const socket = new WebSocket(url);
    this._socket = socket;
    this._opened = false;
    socket.onmessage = (event) => this._onFrame(socket, event.data);
    socket.onclose = (event) => this._onClose(socket, event.code);
    socket.onerror = () => {};
    socket.onopen = () => this._armLiveness(socket);
  }

  /** The socket URL with a fresh credential: a ticket is never used twice. */
  async _credentialUrl() {
    const { ticket, token } = this._options;
    if (!ticket && !token) return this.url;
    const [name, value] = ticket ? ["ticket", await ticket()] : ["token", await token()];
    if (typeof value !== "string" || !value) throw new CredentialError(`no ${name}`, 401);
    return `${this.url}${this.url.includes("?") ? "&" : "?"}${name}=${encodeURIComponent(value)}`;
  }

  _credentialFailed(error) {
    if (error?.status === 401) return this._stop("unauthorized");
    if (error?.status === 403) return this._unauthorizedClose();
    if (error?.status === 429) {
      const seconds = Number.isFinite(error.retryAfter) ? error.retryAfter : TIMING.backoffCap / 1000;
      return this._retryIn(seconds * 1000);
    }
    this._retryWithBackoff();
  }

  _onFrame(socket, data) {
    if (socket !== this._socket) return;
    this._armLiveness(socket);
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    if (isStatus(frame)) {
      if (!this._opened) this._connectionDelivered();
      this._deliver(frame);
    } else if (frame?.type === "error") {
      this._emit("error", frame);
      this._post({ kind: "error", frame });
    }
  }

  _connectionDelivered() {
    this._opened = true;
    this._everOpened = true;
    this._attempt = 0;
    this._unauthorized = 0;
    this._failedHandshakes = 0;
    this._stopPolling();
    this._setState("open");
  }

  _onClose(socket, code) {
    if (socket !== this._socket) return;
    this._dropSocket();
    if (!this._running) return;
    if (code === CLOSE_CODES.UNAUTHORIZED) return this._unauthorizedClose();
    if (code === CLOSE_CODES.FORBIDDEN) return this._stop("forbidden");
    const delivered = this._opened;
    this._opened = false;
    if (code === CLOSE_CODES.TOO_MANY) return this._retryIn(TIMING.backoffCap);
    if (!delivered && ++this._failedHandshakes >= FAILED_HANDSHAKES_BEFORE_POLLING) this._startPolling();
    this._retryWithBackoff();
  }

  _unauthorizedClose() {
    this._opened = false;
    if (++this._unauthorized >= UNAUTHORIZED_CLOSES_BEFORE_GIVING_UP) return this._stop("unauthorized");
    // The first refusal is usually an expired credential: a fresh one at once, then back off.
    if (this._unauthorized === 1) return this._tryNow();
    this._retryWithBackoff();
  }

  _retryWithBackoff() {
    const ceiling = Math.min(TIMING.backoffCap, TIMING.backoffBase * 2 ** this._attempt);
    this._attempt = Math.min(this._attempt + 1, 30);
    this._retryIn(Math.random() * ceiling);
  }

  _retryIn(delay) {
    this._setState(this._waitingState());
    this._setTimer("retry", delay, () => this._tryNow());
  }

  _waitingState() {
    if (this._isOffline()) return "offline";
    return this._polling ? "polling" : "reconnecting";
  }

  _waitFor(what, state) {
    this._waitingFor = what;
    this._setState(state || this._waitingState());
  }

  _wake() {
    if (!this._running || !this._leading) return;
    if (this._socket?.readyState === OPEN && this._opened) return this._send({ type: "refresh" });
    if (this._polling) this._pollNow();
    // An attempt waiting for its credential is not doubled: a ticket costs a request.
    if (!this._socket && !this._fetching) this._tryNow();
  }

  _armLiveness(socket) {
    this._clearTimer("dead");
    this._setTimer("ping", TIMING.pingAfter, () => {
      this._send({ type: "ping" });
      this._setTimer("dead", TIMING.deadAfter, () => {
        // A dead link may never deliver its close event: give it up without waiting.
        if (socket === this._socket) this._onClose(socket, 4000);
      });
    });
  }

  _send(frame) {
    if (this._socket?.readyState === OPEN) this._socket.send(JSON.stringify(frame));
  }

  _dropSocket() {
    const socket = this._socket;
    this._socket = null;
    this._clearTimer("ping");
    this._clearTimer("dead");
    if (!socket) return;
    socket.onmessage = socket.onclose = socket.onopen = socket.onerror = null;
    if (socket.readyState <= OPEN) socket.close(1000);
  }

  /** Stops for good (`close`) or until `connect()` (signed in again); other tabs may take over. */
  _stop(state) {
    this._setState(state);
    this._running = false;
    this._leading = false;
    this._attemptId = (this._attemptId || 0) + 1;
    this._fetching = false;
    this._dropSocket();
    this._stopPolling();
    for (const timer of this._timers.values()) clearTimeout(timer);
    this._timers.clear();
    this._abandonLock?.abort();
    this._releaseLock?.();
    this._post({ kind: "visibility", visible: false }); // a stopped tab keeps no leader awake
    this._channel?.close();
    this._channel = this._releaseLock = this._abandonLock = null;
  }

  // --- HTTP fallback, while sockets cannot get through ---

  _startPolling() {
    if (this._polling) return;
    this._polling = true;
    this._pollNow();
  }

  _stopPolling() {
    this._polling = false;
    this._clearTimer("poll");
  }

  _pollNow() {
    this._clearTimer("poll");
    if (!this._polling || this._isOffline()) return;
    this._poll().finally(() => {
      if (!this._polling) return;
      const delay = TIMING.pollMin + Math.random() * (TIMING.pollMax - TIMING.pollMin);
      this._setTimer("poll", delay, () => this._pollNow());
    });
  }

  async _poll() {
    const { fetchOptions = {}, token, pollUrl } = this._options;
    const headers = { ...fetchOptions.headers };
    try {
      if (token) headers.Authorization = `Bearer ${await token()}`;
      const response = await fetch(pollUrl || pollUrlFor(this.url), {
        credentials: "same-origin", ...fetchOptions, headers,
      });
      if (response.status === 401 && this._polling) return this._stop("unauthorized");
      const status = response.ok ? await response.json() : null;
      if (this._polling && isStatus(status)) this._deliver(status);
    } catch {
      // A failed poll is retried on the next beat.
    }
  }

  // --- tabs: followers hear the leader over a BroadcastChannel ---

  _post(message) {
    if (this._channel && (this._leading || !["status", "state", "error", "leader"].includes(message.kind))) {
      this._channel.postMessage({ ...message, from: this._tabId });
    }
  }

  _onTabMessage(message) {
    if (!this._running) return;
    if (this._leading) {
      if (message.kind === "hello") {
        this._post({ kind: "state", state: this.state });
        if (this.status) this._post({ kind: "status", status: this.status });
      } else if (message.kind === "refresh") {
        this.refresh();
      } else if (message.kind === "visibility") {
        this._onTabVisibility(message.from, message.visible);
      }
      return;
    }
    if (message.kind === "status" && isStatus(message.status)) this._deliver(message.status);
    else if (message.kind === "state") this._followState(message.state);
    else if (message.kind === "error") this._emit("error", message.frame);
    else if (message.kind === "leader") this._announceVisibility();
  }

  _followState(state) {
    // A leader that stopped released its lock: this tab takes over with its own credentials,
    // so only this tab's own terminal states are final.
    if (state !== "closed") this._setState(state);
  }

  _onTabVisibility(tab, visible) {
    const wasHidden = this._isHidden();
    if (visible) this._visibleTabs.add(tab);
    else this._visibleTabs.delete(tab);
    if (wasHidden && !this._isHidden()) this._onPageBack();
  }

  _announceVisibility() {
    if (!this._leading) this._post({ kind: "visibility", visible: !globalThis.document?.hidden });
  }

  // --- the page: network and visibility ---

  _watchPage() {
    if (this._pageHandlers) return;
    const page = globalThis.window;
    const doc = globalThis.document;
    this._pageHandlers = [];
    const listen = (target, type, handler) => {
      if (!target?.addEventListener) return;
      target.addEventListener(type, handler);
      this._pageHandlers.push([target, type, handler]);
    };
    listen(page, "online", () => this._onPageBack());
    listen(page, "offline", () => {
      if (this._running && this._leading && !this._socket) this._setState("offline");
    });
    listen(doc, "visibilitychange", () => {
      this._announceVisibility();
      if (!doc.hidden) this._onPageBack();
    });
    listen(page, "pagehide", () => this._post({ kind: "visibility", visible: false }));
  }

  _onPageBack() {
    if (!this._running) return;
    if (!this._leading) return this._announceVisibility();
    if (this._waitingFor || this.state !== "open") return this._wake();
    this._send({ type: "refresh" });
  }

  _isOffline() {
    return globalThis.navigator?.onLine === false;
  }

  _isHidden() {
    return Boolean(globalThis.document?.hidden) && this._visibleTabs.size === 0;
  }

  // --- plumbing ---

  _deliver(status) {
    if (this.status && status.version <= this.status.version) return;
    this.status = status;
    this._emit("status", status);
    this._post({ kind: "status", status });
  }

  _setState(state) {
    if (state === this.state) return;
    this.state = state;
    this._emit("state", state);
    this._post({ kind: "state", state });
  }

  _emit(event, value) {
    for (const listener of [...this._listeners[event]]) {
      try {
        listener(value);
      } catch (error) {
        setTimeout(() => { throw error; });
      }
    }
  }

  _setTimer(name, delay, callback) {
    this._clearTimer(name);
    this._timers.set(name, setTimeout(() => {
      this._timers.delete(name);
      callback();
    }, delay));
  }

  _clearTimer(name) {
    clearTimeout(this._timers.get(name));
    this._timers.delete(name);
  }
}
