// The demo page's translation table (realtime/static/wizard-status-demo/messages.js):
// every language holds every message, every plural category its language has, and no
// placeholder the English message lacks; every key the page's markup and scripts name exists.
// Run: node --test tests/client/

import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { test } from "node:test";

import { FORMAT_LOCALES, MESSAGES } from "../../realtime/static/wizard-status-demo/messages.js";

const DEMO = new URL("../../realtime/static/wizard-status-demo/", import.meta.url);
const TEMPLATE = new URL(
  "../../realtime/templates/realtime/wizard_status_demo.html",
  import.meta.url,
);
const LANGUAGES = ["en", "tr", "ar"];
// The client's states (contract section 7): the badge names each one.
const STATES = [
  "connecting",
  "open",
  "reconnecting",
  "offline",
  "polling",
  "unauthorized",
  "forbidden",
  "closed",
];

const isPlural = (message) => typeof message === "object" && message !== null;
const placeholders = (text) => new Set([...text.matchAll(/\{(\w+)\}/g)].map((match) => match[1]));
const forms = (message) => (isPlural(message) ? Object.values(message) : [message]);
const sorted = (items) => [...items].sort();

test("the table speaks exactly en, tr and ar, each with a formatting locale", () => {
  assert.deepEqual(sorted(Object.keys(MESSAGES)), sorted(LANGUAGES));
  assert.deepEqual(sorted(Object.keys(FORMAT_LOCALES)), sorted(LANGUAGES));
  for (const lang of LANGUAGES) {
    assert.equal(new Intl.Locale(FORMAT_LOCALES[lang]).language, lang);
  }
});

test("every language has the same keys", () => {
  const english = sorted(Object.keys(MESSAGES.en));
  for (const lang of LANGUAGES) {
    assert.deepEqual(sorted(Object.keys(MESSAGES[lang])), english, lang);
  }
});

test("no message is empty", () => {
  for (const lang of LANGUAGES) {
    for (const [key, message] of Object.entries(MESSAGES[lang])) {
      for (const text of forms(message)) {
        assert.equal(typeof text, "string", `${lang}.${key}`);
        assert.notEqual(text.trim(), "", `${lang}.${key}`);
      }
    }
  }
});

test("plural messages have exactly the categories Intl.PluralRules reports", () => {
  const pluralKeys = Object.keys(MESSAGES.en).filter((key) => isPlural(MESSAGES.en[key]));
  assert.deepEqual(sorted(pluralKeys), ["error_rate_limited", "progress_steps"]);
  for (const lang of LANGUAGES) {
    const rules = new Intl.PluralRules(FORMAT_LOCALES[lang]);
    const categories = rules.resolvedOptions().pluralCategories;
    assert.deepEqual(
      sorted(categories),
      sorted(new Intl.PluralRules(lang).resolvedOptions().pluralCategories),
    );
    for (const [key, message] of Object.entries(MESSAGES[lang])) {
      assert.equal(isPlural(message), pluralKeys.includes(key), `${lang}.${key}`);
      if (isPlural(message)) {
        assert.deepEqual(sorted(Object.keys(message)), sorted(categories), `${lang}.${key}`);
      }
    }
  }
  assert.deepEqual(
    sorted(Object.keys(MESSAGES.ar.progress_steps)),
    ["few", "many", "one", "other", "two", "zero"],
  );
});

test("translations use only the English message's placeholders, a plain one all of them", () => {
  for (const [key, english] of Object.entries(MESSAGES.en)) {
    const allowed = new Set(forms(english).flatMap((text) => [...placeholders(text)]));
    for (const lang of LANGUAGES) {
      const message = MESSAGES[lang][key];
      for (const text of forms(message)) {
        for (const name of placeholders(text)) {
          assert.ok(allowed.has(name), `${lang}.${key} uses {${name}}`);
        }
      }
      if (!isPlural(message)) assert.deepEqual(placeholders(message), allowed, `${lang}.${key}`);
      else assert.deepEqual(placeholders(message.other), allowed, `${lang}.${key}.other`);
    }
  }
});

test("every connection state has its text", () => {
  for (const state of STATES) assert.ok(`state_${state}` in MESSAGES.en, state);
  assert.ok("state_unknown" in MESSAGES.en);
});

test("every key the template names exists", () => {
  const html = readFileSync(TEMPLATE, "utf8");
  const keys = [...html.matchAll(/data-i18n(?:-[a-z-]+)?="([^"]+)"/g)].map((match) => match[1]);
  assert.ok(keys.length > 0);
  for (const key of keys) assert.ok(key in MESSAGES.en, key);
});

test("every key the scripts name exists", () => {
  const patterns = [
    /\b(?:t|fragment|showSignIn)\(\s*"(\w+)"/g, // i18n.t("key", ...), i18n.fragment("key")
    /\bt\(\s*\w+ \? "(\w+)" : "(\w+)"/g, // i18n.t(done ? "a" : "b")
    /\b\d{3}: "(\w+)"/g, // messages by HTTP status
    /\breturn "(\w+)";/g, // a form action's success message
  ];
  const scripts = readdirSync(DEMO).filter(
    (name) => name.endsWith(".js") && name !== "messages.js",
  );
  assert.ok(scripts.includes("demo.js"));
  let found = 0;
  for (const name of scripts) {
    const source = readFileSync(new URL(name, DEMO), "utf8");
    for (const pattern of patterns) {
      for (const match of source.matchAll(pattern)) {
        for (const key of match.slice(1).filter(Boolean)) {
          found += 1;
          assert.ok(key in MESSAGES.en, `${name}: ${key}`);
        }
      }
    }
  }
  assert.ok(found > 20, `only ${found} keys found in the scripts`);
});

test("numbers follow each language's conventions", () => {
  const percent = (lang) =>
    new Intl.NumberFormat(FORMAT_LOCALES[lang], { style: "percent" }).format(0.67);
  assert.equal(percent("en"), "67%");
  assert.equal(percent("tr"), "%67");
  assert.equal("yetkisiz".toLocaleUpperCase("tr"), "YETKİSİZ");
  assert.equal(MESSAGES.tr.state_unauthorized.toLocaleUpperCase("tr"), "YETKİSİZ");
});
