// React bindings of wizard-status.js: the status and state as React state, nothing more.
import { useCallback, useEffect, useRef, useState, useSyncExternalStore } from "react";

import { WizardStatusClient } from "./wizard-status.js";

const noClient = () => () => {};

/** Follows a client: `{status, state, refresh}`, re-rendering on every newer status or state. */
export function useWizardStatus(client) {
  const subscribe = useCallback((notify) => {
    if (!client) return () => {};
    const offs = [client.on("status", notify), client.on("state", notify)];
    return () => offs.forEach((off) => off());
  }, [client]);
  const status = useSyncExternalStore(client ? subscribe : noClient, () => client?.status ?? null, () => null);
  const state = useSyncExternalStore(
    client ? subscribe : noClient, () => client?.state ?? "connecting", () => "connecting",
  );
  const refresh = useCallback(() => client?.refresh(), [client]);
  return { status, state, refresh };
}

/**
 * A client owned by a component: made after mount, closed on unmount (safe under StrictMode's
 * double mount). The latest `ticket`/`token` functions are used; a new `url` makes a new client.
 */
export function useWizardStatusClient(options = {}) {
  const latest = useRef(options);
  latest.current = options;
  const [client, setClient] = useState(null);
  const { url, shareAcrossTabs } = options;
  useEffect(() => {
    const initial = latest.current;
    const created = new WizardStatusClient({
      ...initial,
      ticket: initial.ticket && (() => latest.current.ticket()),
      token: initial.token && (() => latest.current.token()),
    });
    setClient(created);
    return () => created.close();
  }, [url, shareAcrossTabs]);
  return client;
}
