// Vue 3 bindings of wizard-status.js: the status and state as refs, nothing more.
import { getCurrentScope, onScopeDispose, shallowReadonly, shallowRef } from "vue";

import { WizardStatusClient } from "./wizard-status.js";

/**
 * `{status, state, refresh, client}` as refs following a client. Given options instead of a
 * client, it makes one and closes it with the component (or effect scope) that called it.
 */
export function useWizardStatus(clientOrOptions = {}) {
  const owned = !(clientOrOptions instanceof WizardStatusClient);
  const client = owned ? new WizardStatusClient(clientOrOptions) : clientOrOptions;
  const status = shallowRef(client.status);
  const state = shallowRef(client.state);
  const offs = [
    client.on("status", (value) => { status.value = value; }),
    client.on("state", (value) => { state.value = value; }),
  ];
  if (getCurrentScope()) {
    onScopeDispose(() => {
      offs.forEach((off) => off());
      if (owned) client.close();
    });
  }
  return {
    status: shallowReadonly(status), state: shallowReadonly(state), refresh: () => client.refresh(), client,
  };
}
