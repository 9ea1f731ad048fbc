import type { ConnectionState, WizardStatus, WizardStatusClient, WizardStatusClientOptions } from "./wizard-status.js";

export interface WizardStatusHook {
  status: WizardStatus | null;
  state: ConnectionState;
  refresh: () => void;
}

/** Follows a client (made once, e.g. at module scope, or by `useWizardStatusClient`). */
export function useWizardStatus(client: WizardStatusClient | null): WizardStatusHook;

/** A client owned by the component: null until mounted, closed on unmount. */
export function useWizardStatusClient(options?: WizardStatusClientOptions): WizardStatusClient | null;
