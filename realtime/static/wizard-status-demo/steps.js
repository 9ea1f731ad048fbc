// The small form of each requirement: it writes through the REST API and says how that went.
// It never marks a step done itself: the socket's next status does, here and in every other tab.

import { control, one } from "./dom.js";

/**
 * @typedef {import("./i18n.js").Translator} Translator
 * @typedef {ReturnType<import("./api.js").createApi>} Api
 * @typedef {ReturnType<import("./feedback.js").createFeedback>} Feedback
 */

const PROFILE_FIELDS = ["first_name", "last_name", "phone_number", "business_type"];

/**
 * @param {ParentNode} root
 * @param {{api: Api, i18n: Translator, feedback: Feedback}} deps
 */
export function createSteps(root, { api, i18n, feedback }) {
  /** @type {Record<string, HTMLFormElement>} */
  const forms = {};
  for (const form of root.querySelectorAll("form[data-form]")) {
    if (form instanceof HTMLFormElement) forms[form.dataset.form ?? ""] = form;
  }
  const businessTypes = one(forms.business_type, "select", HTMLSelectElement);
  const prompt = control(forms.manual_prompt, "content");
  const channelForm = forms.channel_connected;
  const channelList = one(channelForm, ".channel-list");
  const channelsEmpty = one(channelForm, ".channels-empty");
  /** @type {WeakMap<HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement, string>} */
  const fromServer = new WeakMap(); // what each field last showed of the server's data
  let typesLoaded = false;
  let rereading = false;
  let rereadAgain = false;

  /** Shows the server's value, unless the person has edited the field since (`force`: a
   * value just saved from it).
   * @param {HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement} input
   * @param {string | null | undefined} value */
  function fill(input, value, force = false) {
    const shown = fromServer.get(input);
    if (!force && shown !== undefined && input.value !== shown) return;
    input.value = value ?? "";
    fromServer.set(input, input.value);
  }

  /** @param {Record<string, string>} profile */
  function fillProfile(profile, fields = PROFILE_FIELDS, force = false) {
    for (const field of fields) fill(control(forms[field], field), profile[field], force);
  }

  /** @param {{value: string, label: string}[]} choices */
  function fillBusinessTypes(choices) {
    const options = choices.map(({ value, label }) => {
      const key = `business_type_${value}`;
      return new Option(i18n.has(key) ? i18n.t(key) : label, value);
    });
    // The first option, "choose one", stays: choosing it clears the field.
    businessTypes.replaceChildren(businessTypes.options[0], ...options);
    typesLoaded = true;
  }

  /** @param {{id: number, platform: string, external_id: string}[]} channels */
  function renderChannels(channels) {
    channelList.replaceChildren(
      ...channels.map((channel) => {
        const item = document.createElement("li");
        const platform = document.createElement("bdi");
        const key = `platform_${channel.platform}`;
        platform.textContent = i18n.has(key) ? i18n.t(key) : channel.platform;
        const text = document.createElement("span");
        text.append(i18n.fragment("channel_item", { platform, external_id: channel.external_id }));
        const button = document.createElement("button");
        button.type = "button";
        button.className = "disconnect-btn secondary";
        button.textContent = i18n.t("disconnect_button");
        button.addEventListener("click", () =>
          feedback.run(channelForm, async () => {
            try {
              await api.delete(`/channels/${channel.id}`);
            } finally {
              await reloadChannels(); // a 404: another tab removed it first
            }
            return "channel_removed";
          }),
        );
        item.append(text, button);
        return item;
      }),
    );
    channelsEmpty.hidden = channels.length > 0;
  }

  async function loadChannels() {
    renderChannels(await api.get("/channels"));
  }

  /** After a write, the list as it is now; a failure to read it is not the write's. */
  async function reloadChannels() {
    try {
      await loadChannels();
    } catch {
      // the list stays as it was; the next status or action reads it again
    }
  }

  for (const field of PROFILE_FIELDS) {
    forms[field].addEventListener("submit", (event) => {
      event.preventDefault();
      feedback.run(forms[field], async () => {
        const value = control(forms[field], field).value;
        // The answer holds the value as stored (a phone number in E.164).
        fillProfile(await api.patch("/accounts/me", { [field]: value }), [field], true);
        return "saved";
      });
    });
  }

  forms.manual_prompt.addEventListener("submit", (event) => {
    event.preventDefault();
    feedback.run(forms.manual_prompt, async () => {
      const saved = await api.put("/ai-prompts/manual", { content: prompt.value });
      fill(prompt, saved.content, true);
      return "saved";
    });
  });
  one(forms.manual_prompt, ".clear-btn").addEventListener("click", () =>
    feedback.run(forms.manual_prompt, async () => {
      await api.delete("/ai-prompts/manual");
      fill(prompt, "", true);
      return "cleared";
    }),
  );

  channelForm.addEventListener("submit", (event) => {
    event.preventDefault();
    feedback.run(channelForm, async () => {
      const externalId = control(channelForm, "external_id");
      const platform = control(channelForm, "platform").value;
      await api.post("/channels", { platform, external_id: externalId.value });
      externalId.value = "";
      await reloadChannels();
      return "channel_added";
    });
  });

  /** Fills every form from the API: after sign-in (`force`), or when a status shows a change
   * made elsewhere (fields being edited are left alone). */
  async function load(force = true) {
    const [choices, profile, savedPrompt] = await Promise.all([
      typesLoaded ? null : api.get("/accounts/business-types"),
      api.get("/accounts/me"),
      api.get("/ai-prompts/manual"),
      loadChannels(),
    ]);
    if (choices) fillBusinessTypes(choices);
    fillProfile(profile, PROFILE_FIELDS, force);
    fill(prompt, savedPrompt.content, force);
  }

  /** A new status: something changed, maybe in another tab or device. Read the forms' data
   * again, one read at a time; a failed read waits for the next status. */
  async function statusChanged() {
    if (!typesLoaded) return; // the first load is still under way
    if (rereading) {
      rereadAgain = true; // the read under way may have begun before this change
      return;
    }
    rereading = true;
    do {
      rereadAgain = false;
      try {
        await load(false);
      } catch {
        // the forms keep what they show
      }
    } while (rereadAgain);
    rereading = false;
  }

  return { load, statusChanged };
}
