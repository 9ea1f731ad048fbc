// The REST API of the service, as the page calls it: JSON both ways, the session cookie, and
// the CSRF token on every unsafe request, read from its cookie each time (login rotates it).

const ROOT = "/api/v1";

/** An answer that was not 2xx. `body` is the parsed JSON answer, if any. */
export class ApiError extends Error {
  /** @param {number} status @param {any} body @param {number | null} retryAfter */
  constructor(status, body, retryAfter) {
    super(`HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.body = body;
    this.retryAfter = retryAfter;
  }
}

/** @param {string} name */
function readCookie(name) {
  for (const pair of document.cookie.split(";")) {
    const [key, ...value] = pair.trim().split("=");
    if (key === name) return decodeURIComponent(value.join("="));
  }
  return null;
}

/** @param {Response} response @param {any} body */
function retryAfterOf(response, body) {
  const seconds = Number(body?.retry_after ?? response.headers.get("Retry-After"));
  return Number.isFinite(seconds) && seconds > 0 ? Math.ceil(seconds) : null;
}

/** @param {string} csrfCookieName  settings.CSRF_COOKIE_NAME */
export function createApi(csrfCookieName) {
  /** @param {string} method @param {string} path @param {unknown} [body] */
  async function request(method, path, body) {
    /** @type {Record<string, string>} */
    const headers = { Accept: "application/json" };
    if (method !== "GET") {
      const token = readCookie(csrfCookieName);
      if (token) headers["X-CSRFToken"] = token;
    }
    /** @type {RequestInit} */
    const init = { method, headers, credentials: "same-origin" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    // A network failure rejects here with a TypeError, which callers report as such.
    const response = await fetch(ROOT + path, init);
    const text = await response.text();
    let answer = null;
    if (text) {
      try {
        answer = JSON.parse(text);
      } catch {
        answer = null; // a proxy's HTML error page
      }
    }
    if (!response.ok) throw new ApiError(response.status, answer, retryAfterOf(response, answer));
    return answer;
  }

  return {
    /** The CSRF header for a request made elsewhere (the client's ticket call).
     * @returns {Record<string, string>} */
    csrfHeaders: () => {
      const token = readCookie(csrfCookieName);
      return token ? { "X-CSRFToken": token } : {};
    },
    /** @param {string} path */
    get: (path) => request("GET", path),
    /** @param {string} path @param {unknown} body */
    post: (path, body) => request("POST", path, body),
    /** @param {string} path @param {unknown} body */
    put: (path, body) => request("PUT", path, body),
    /** @param {string} path @param {unknown} [body] */
    patch: (path, body) => request("PATCH", path, body),
    /** @param {string} path */
    delete: (path) => request("DELETE", path),
  };
}
