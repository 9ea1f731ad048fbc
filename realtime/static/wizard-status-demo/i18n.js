// Looks strings up in the translation table and writes numbers, lists and times for the
// page's language. Values put into a message are isolated (`<bdi>`) when it is built as DOM,
// so a Latin username or server message never reorders an Arabic sentence.

/**
 * @typedef {import("./messages.js").Message} Message
 * @typedef {Record<string, string | number | Node>} Params
 * @typedef {ReturnType<typeof createTranslator>} Translator
 */

const PLACEHOLDER = /\{(\w+)\}/g;

/**
 * @param {string} lang  one of the table's languages (anything else reads English)
 * @param {{messages: Record<string, Record<string, Message>>,
 *          labels: Record<string, Record<string, string>>,
 *          locales: Record<string, string>}} tables
 */
export function createTranslator(lang, { messages, labels, locales }) {
  const table = messages[lang] ?? messages.en;
  const fieldLabels = labels[lang] ?? labels.en ?? {};
  const locale = locales[lang] ?? lang;
  const plurals = new Intl.PluralRules(locale);
  const numbers = new Intl.NumberFormat(locale);
  const percents = new Intl.NumberFormat(locale, { style: "percent", maximumFractionDigits: 0 });
  const codes = new Intl.NumberFormat(locale, { useGrouping: false });
  const lists = new Intl.ListFormat(locale, { style: "long", type: "conjunction" });
  const times = new Intl.DateTimeFormat(locale, { timeStyle: "medium" });

  /** The message's text; a plural message in the form for `count`.
   * @param {string} key @param {number} [count] @returns {string} */
  function pattern(key, count) {
    const message = table[key] ?? messages.en[key];
    if (message === undefined) return key;
    if (typeof message === "string") return message;
    return message[plurals.select(count ?? 0)] ?? message.other ?? "";
  }

  /** The message as text.
   * @param {string} key @param {Record<string, string | number>} [params] @param {number} [count]
   */
  function t(key, params = {}, count) {
    return pattern(key, count).replace(PLACEHOLDER, (/** @type {string} */ whole, name) =>
      name in params ? String(params[name]) : whole,
    );
  }

  /** The message as DOM: each value in a `<bdi>` of its own (a Node goes in as it is).
   * @param {string} key @param {Params} [params] @param {number} [count] */
  function fragment(key, params = {}, count) {
    const result = document.createDocumentFragment();
    const parts = pattern(key, count).split(PLACEHOLDER);
    parts.forEach((/** @type {string} */ part, /** @type {number} */ index) => {
      if (index % 2 === 0) {
        if (part) result.append(part);
        return;
      }
      const value = params[part];
      if (value instanceof Node) {
        result.append(value);
      } else {
        const isolated = document.createElement("bdi");
        isolated.textContent = value === undefined ? `{${part}}` : String(value);
        result.append(isolated);
      }
    });
    return result;
  }

  /** Fills `data-i18n` (text), `data-i18n-placeholder`, `data-i18n-aria-label` and
   * `data-label` (a requirement's label from the client) under `root`.
   * @param {ParentNode} root */
  function apply(root) {
    for (const element of root.querySelectorAll("[data-i18n]")) {
      element.textContent = t(element.getAttribute("data-i18n") ?? "");
    }
    for (const element of root.querySelectorAll("[data-i18n-placeholder]")) {
      element.setAttribute("placeholder", t(element.getAttribute("data-i18n-placeholder") ?? ""));
    }
    for (const element of root.querySelectorAll("[data-i18n-aria-label]")) {
      element.setAttribute("aria-label", t(element.getAttribute("data-i18n-aria-label") ?? ""));
    }
    for (const element of root.querySelectorAll("[data-label]")) {
      element.textContent = label(element.getAttribute("data-label") ?? "");
    }
  }

  /** A requirement's label, from the client's `LABELS`. @param {string} field */
  function label(field) {
    return fieldLabels[field] ?? labels.en?.[field] ?? field;
  }

  return {
    lang,
    t,
    fragment,
    apply,
    label,
    /** @param {string} key */
    has: (key) => key in table,
    /** @param {number} value */
    number: (value) => numbers.format(value),
    /** @param {number} percent  a whole percentage, as the server sends it */
    percent: (percent) => percents.format(percent / 100),
    /** @param {number} value  a code, written without grouping */
    code: (value) => codes.format(value),
    /** @param {string[]} items */
    list: (items) => lists.format(items),
    /** @param {Date} date */
    time: (date) => times.format(date),
    /** @param {string} text */
    upper: (text) => text.toLocaleUpperCase(lang),
  };
}
