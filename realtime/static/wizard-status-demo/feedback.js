// What the page says after an action: a translated message near the form that made it, and
// for a failed request the reason, worded from the API's answer (contract section 3).

import { ApiError } from "./api.js";

/** @typedef {import("./i18n.js").Translator} Translator */

// How the page names the body fields a 422 answer can point at: a message key, or a
// requirement whose label the client's `LABELS` holds.
/** @type {Record<string, string>} */
const FIELD_MESSAGES = {
  username: "form_username",
  password: "form_password",
  email: "form_email",
  platform: "channel_platform",
  external_id: "channel_external_id",
};
/** @type {Record<string, string>} */
const FIELD_REQUIREMENTS = { content: "manual_prompt" };
const SUCCESS_SHOWN_MS = 4000;

/** @param {Translator} i18n @param {string | undefined} name */
function fieldName(i18n, name) {
  if (name === undefined) return "";
  if (name in FIELD_MESSAGES) return i18n.t(FIELD_MESSAGES[name]);
  return i18n.label(FIELD_REQUIREMENTS[name] ?? name);
}

/**
 * The message for a failed request.
 * @param {Translator} i18n
 * @param {unknown} error  an ApiError, or what fetch threw
 * @param {Record<number, string>} [byStatus]  message keys that replace the usual ones
 * @returns {string | DocumentFragment}
 */
function describeError(i18n, error, byStatus = {}) {
  if (!(error instanceof ApiError)) return i18n.t("error_network");
  const { status, body } = error;
  if (status in byStatus) return i18n.t(byStatus[status]);
  if (status === 422 && Array.isArray(body?.detail) && body.detail.length > 0) {
    const [first] = body.detail;
    const name = [...(first?.loc ?? [])].reverse().find((part) => typeof part === "string");
    const message = String(first?.msg ?? "");
    return i18n.fragment("error_invalid", { field: fieldName(i18n, name), message });
  }
  if (status === 429) {
    const seconds = error.retryAfter ?? 1;
    return i18n.t("error_rate_limited", { seconds: i18n.number(seconds) }, seconds);
  }
  if (status === 409 && body?.code === "channel_taken") return i18n.t("error_channel_taken");
  if (status === 409 && body?.code === "channel_limit") return i18n.t("error_channel_limit");
  if (status === 400 && body?.code === "wizard_incomplete") {
    /** @type {string[]} */
    const missing = body.missing_fields ?? [];
    const steps = missing.map((field) => i18n.label(field));
    return i18n.fragment("error_wizard_incomplete", { fields: i18n.list(steps) });
  }
  /** @type {Record<number, string>} */
  const byCode = {
    401: "session_ended",
    403: "error_forbidden",
    404: "error_not_found",
    413: "error_too_large",
    503: "error_unavailable",
  };
  if (status in byCode) return i18n.t(byCode[status]);
  return i18n.t("error_unknown", { status: i18n.code(status) });
}

/**
 * @param {Translator} i18n
 * @param {{onUnauthorized: () => void}} hooks  a request answered 401: the session is gone
 */
export function createFeedback(i18n, { onUnauthorized }) {
  /** @type {WeakMap<Element, number>} */
  const timers = new WeakMap();

  /**
   * Shows `content` in the `.form-message` inside `area`; a success fades after a while.
   * @param {Element} area @param {string | Node} content @param {"ok" | "error"} [kind]
   */
  function show(area, content, kind = "ok") {
    const box = area.querySelector(".form-message");
    if (!box) return;
    clearTimeout(timers.get(box));
    box.replaceChildren(content);
    box.classList.toggle("is-error", kind === "error");
    if (kind === "ok" && content !== "") {
      timers.set(box, window.setTimeout(() => box.replaceChildren(), SUCCESS_SHOWN_MS));
    }
  }

  /**
   * Runs one request of a form: one at a time, its outcome shown beside it.
   * @param {HTMLElement} area  the form (or block) the message belongs to
   * @param {() => Promise<string | void>} action  resolves to the key of a success message
   * @param {Record<number, string>} [byStatus]  see describeError
   */
  async function run(area, action, byStatus = {}) {
    if (area.getAttribute("aria-busy") === "true") return;
    area.setAttribute("aria-busy", "true");
    show(area, "");
    try {
      const done = await action();
      if (done) show(area, i18n.t(done));
    } catch (error) {
      show(area, describeError(i18n, error, byStatus), "error");
      if (error instanceof ApiError && error.status === 401 && !(401 in byStatus)) {
        onUnauthorized();
      }
    } finally {
      area.removeAttribute("aria-busy");
    }
  }

  return { show, run };
}
