import type { Ref } from "vue";

import type { ConnectionState, WizardStatus, WizardStatusClient, WizardStatusClientOptions } from "./wizard-status.js";

export interface WizardStatusRefs {
  status: Readonly<Ref<WizardStatus | null>>;
  state: Readonly<Ref<ConnectionState>>;
  refresh: () => void;
  client: WizardStatusClient;
}

/** Refs following a client; given options, a client owned by the calling component. */
export function useWizardStatus(clientOrOptions?: WizardStatusClient | WizardStatusClientOptions): WizardStatusRefs;
