// Draws the client's status and connection state into the guide's markup hooks. The status is
// the only source: the checklist, the progress and the complete button show what the server
// sent, never a figure of our own.

import { one } from "./dom.js";

/** @typedef {import("./i18n.js").Translator} Translator */

/**
 * @param {ParentNode} root
 * @param {Translator} i18n
 * @param {readonly string[]} requirements  the six requirements, canonical order
 */
export function createStatusView(root, i18n, requirements) {
  const items = requirements.map((field) => one(root, `[data-field="${field}"]`));
  const bar = one(root, ".progress");
  const fill = one(root, ".progress-fill");
  const percentText = one(root, ".progress-text");
  const stepsText = one(root, ".progress-steps");
  const meta = one(root, ".status-meta");
  const badge = one(root, ".connection-status");
  const completeButton = one(root, ".complete-wizard-btn", HTMLButtonElement);
  const completeHint = one(root, ".complete-hint");
  const completeNotice = one(root, ".wizard-complete");
  const platforms = /** @type {NodeListOf<HTMLElement>} */ (
    root.querySelectorAll("[data-platform]")
  );

  stepsText.textContent = i18n.t("progress_waiting");

  /** @param {any} status  the status object of contract section 1 */
  function renderStatus(status) {
    requirements.forEach((field, index) => {
      const done = status.details?.[field] === true;
      items[index].classList.toggle("completed", done);
      items[index].classList.toggle("pending", !done);
      one(items[index], ".step-state").textContent = i18n.t(done ? "step_done" : "step_pending");
    });
    for (const chip of platforms) {
      const connected = status.details?.[`${chip.dataset.platform}_connected`] === true;
      chip.classList.toggle("connected", connected);
    }

    const { completed, total, percent } = status.progress;
    fill.style.width = `${percent}%`;
    if (!bar.classList.contains("animated")) {
      // The first status is drawn at once (the style is computed now); later ones grow the bar.
      void fill.offsetWidth;
      bar.classList.add("animated");
    }
    bar.setAttribute("aria-valuenow", String(percent));
    bar.setAttribute("aria-valuetext", i18n.percent(percent));
    percentText.textContent = i18n.percent(percent);
    stepsText.textContent = i18n.t(
      "progress_steps",
      { completed: i18n.number(completed), total: i18n.number(total) },
      completed,
    );
    meta.replaceChildren(
      i18n.fragment("status_updated", {
        version: i18n.number(status.version),
        time: i18n.time(new Date(status.timestamp)),
      }),
    );

    completeButton.disabled = !status.can_complete;
    completeHint.hidden = status.can_complete || status.wizard_complete;
    completeNotice.hidden = !status.wizard_complete;
  }

  /** @param {string} state  the client's state */
  function renderState(state) {
    badge.dataset.state = state;
    const key = i18n.has(`state_${state}`) ? `state_${state}` : "state_unknown";
    badge.textContent = i18n.upper(i18n.t(key));
  }

  return { renderStatus, renderState };
}
