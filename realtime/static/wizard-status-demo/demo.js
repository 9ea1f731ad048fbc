// The demo page: wires the service's browser client, the REST forms and the translation table.
// The checklist follows the client's `status` events only, so every open tab shows the same.

import {
  LABELS,
  REQUIREMENTS,
  WizardStatusClient,
  fetchTicket,
} from "../wizard-status/wizard-status.js";
import { createAccount } from "./account.js";
import { createApi } from "./api.js";
import { one } from "./dom.js";
import { createFeedback } from "./feedback.js";
import { createTranslator } from "./i18n.js";
import { FORMAT_LOCALES, MESSAGES } from "./messages.js";
import { createStatusView } from "./status-view.js";
import { createSteps } from "./steps.js";

// Set by the server: who is signed in, and the name of the CSRF cookie.
const page = document.body.dataset;
const i18n = createTranslator(document.documentElement.lang, {
  messages: MESSAGES,
  labels: LABELS,
  locales: FORMAT_LOCALES,
});
i18n.apply(document);

const wizard = one(document, ".wizard");
const summary = one(document, ".summary-actions");
const deactivated = one(document, ".account-deactivated");
/** Who the page shows, or null while nobody is signed in. */
let username = page.signedIn === "true" ? (page.username ?? "") : null;

const api = createApi(page.csrfCookie || "csrftoken");
// A ticket before every connection attempt, with the CSRF token of the cookie the settings name.
const ticket = () => fetchTicket({ headers: api.csrfHeaders() });
const client = new WizardStatusClient({ ticket, autoConnect: false });
const view = createStatusView(document, i18n, REQUIREMENTS);
const feedback = createFeedback(i18n, { onUnauthorized: () => showSignIn("session_ended") });
const steps = createSteps(document, { api, i18n, feedback });
const account = createAccount(document, {
  api,
  i18n,
  feedback,
  onSignedIn: signedIn,
  onSignedOut: () => {
    client.close();
    window.location.reload();
  },
});

client.on("status", (status) => {
  view.renderStatus(status);
  steps.statusChanged();
});
client.on("state", (state) => {
  view.renderState(state);
  deactivated.hidden = state !== "forbidden";
  if (state === "unauthorized") showSignIn("session_ended");
});
client.on("error", (frame) => {
  const seconds = frame.retry_after ?? 1;
  const message =
    frame.code === "rate_limited"
      ? i18n.t("error_rate_limited", { seconds: i18n.number(seconds) }, seconds)
      : i18n.t("error_socket");
  feedback.show(summary, message, "error");
});
view.renderState(client.state);
if (client.status) view.renderStatus(client.status);

one(document, ".refresh-btn").addEventListener("click", () => client.refresh());
one(document, ".complete-wizard-btn").addEventListener("click", () =>
  feedback.run(summary, async () => {
    // The answer's status arrives on the socket too, which is what the page shows.
    await api.patch("/accounts/wizard-complete");
  }),
);

/** @param {string} name */
function showWizard(name) {
  account.showSignedIn(name);
  wizard.hidden = false;
  client.connect();
  feedback.run(summary, () => steps.load());
}

/** @param {string} [messageKey] */
function showSignIn(messageKey) {
  wizard.hidden = true;
  account.showSignIn(messageKey);
}

/** @param {string} name  as the login answered it */
function signedIn(name) {
  // The client drops statuses older than the newest it has seen: another user's start afresh.
  if (username !== null && name.toLowerCase() !== username.toLowerCase()) {
    window.location.reload();
    return;
  }
  username = name;
  showWizard(name);
}

if (username !== null) showWizard(username);
else showSignIn();
