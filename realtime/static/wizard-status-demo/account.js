// Signing in (the session cookie), registering, and signing out.

import { ApiError } from "./api.js";
import { control, one } from "./dom.js";

/**
 * @typedef {ReturnType<import("./api.js").createApi>} Api
 * @typedef {ReturnType<import("./feedback.js").createFeedback>} Feedback
 * @typedef {import("./i18n.js").Translator} Translator
 */

/**
 * @param {ParentNode} root
 * @param {{api: Api, i18n: Translator, feedback: Feedback,
 *          onSignedIn: (username: string) => void, onSignedOut: () => void}} deps
 */
export function createAccount(root, { api, i18n, feedback, onSignedIn, onSignedOut }) {
  const panel = one(root, ".sign-in");
  const signInForm = one(panel, ".sign-in-form", HTMLFormElement);
  const registerForm = one(panel, ".register-form", HTMLFormElement);
  const toggle = one(panel, ".register-toggle");
  const title = one(panel, ".auth-title");
  const signedInAs = one(root, ".signed-in-as");
  let registering = false;

  /** @param {HTMLFormElement} form */
  function credentials(form) {
    return { username: control(form, "username").value, password: control(form, "password").value };
  }

  /** @param {HTMLFormElement} form */
  async function signIn(form) {
    const user = await api.post("/auth/login", credentials(form));
    form.reset();
    onSignedIn(user.username);
  }

  signInForm.addEventListener("submit", (event) => {
    event.preventDefault();
    feedback.run(signInForm, () => signIn(signInForm), { 401: "error_credentials" });
  });

  registerForm.addEventListener("submit", (event) => {
    event.preventDefault();
    feedback.run(
      registerForm,
      async () => {
        const email = control(registerForm, "email").value;
        await api.post("/auth/register", { ...credentials(registerForm), ...(email && { email }) });
        await signIn(registerForm);
      },
      { 401: "error_credentials", 409: "error_username_taken" },
    );
  });

  function showMode() {
    signInForm.hidden = registering;
    registerForm.hidden = !registering;
    title.textContent = i18n.t(registering ? "register_title" : "sign_in_title");
    toggle.textContent = i18n.t(registering ? "show_sign_in" : "show_register");
  }
  toggle.addEventListener("click", () => {
    registering = !registering;
    showMode();
    control(registering ? registerForm : signInForm, "username").focus();
  });

  const signOutArea = one(root, ".account-bar");
  one(signOutArea, ".sign-out-btn").addEventListener("click", () =>
    feedback.run(signOutArea, async () => {
      try {
        await api.post("/auth/logout", {});
      } catch (error) {
        // 401: signed out elsewhere already, which is what was asked.
        if (!(error instanceof ApiError && error.status === 401)) throw error;
      }
      onSignedOut();
    }),
  );

  /** The sign-in panel, with a message if there is something to say.
   * @param {string} [messageKey] */
  function showSignIn(messageKey) {
    panel.hidden = false;
    registering = false;
    showMode();
    if (messageKey) feedback.show(signInForm, i18n.t(messageKey), "error");
  }

  /** @param {string} username */
  function showSignedIn(username) {
    panel.hidden = true;
    const name = document.createElement("bdi");
    name.textContent = username;
    signedInAs.replaceChildren(i18n.fragment("signed_in_as", { username: name }));
  }

  return { showSignIn, showSignedIn };
}
