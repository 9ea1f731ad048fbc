// Compiled by `npm run typecheck` (tsc --noEmit), never run: the .d.ts files describe the API.
import {
  CredentialError, LABELS, REQUIREMENTS, WizardStatusClient, fetchTicket, textDirection,
  type ConnectionState, type ErrorFrame, type WizardStatus,
} from "../src/wizard-status.js";
import { useWizardStatus, useWizardStatusClient } from "../src/react.js";
import { useWizardStatus as useWizardStatusRefs } from "../src/vue.js";

const client = new WizardStatusClient({ ticket: fetchTicket });
new WizardStatusClient({ ticket: () => fetchTicket({ headers: { Authorization: "Bearer jwt" } }) });
const off: () => void = client.on("status", (status: WizardStatus) => {
  const percent: number = status.progress.percent;
  const channel: boolean = status.details.channel_connected;
  const missing: string[] = status.missing_fields;
  void [percent, channel, missing];
});
client.on("state", (state: ConnectionState) => void state);
client.on("error", (frame: ErrorFrame) => void frame.retry_after);
// @ts-expect-error: no such event
client.on("message", () => {});
off();

new WizardStatusClient({ token: () => "jwt", autoConnect: false, shareAcrossTabs: false }).connect();
new WizardStatusClient({ token: async () => "jwt", fetchOptions: { credentials: "include" } });
// @ts-expect-error: a ticket function returns a promise of a string
new WizardStatusClient({ ticket: () => 42 });

const label: string = LABELS.tr[REQUIREMENTS[0]];
const direction: "ltr" | "rtl" = textDirection("ar");
const refused = new CredentialError("slow down", 429, 7);
const hook = useWizardStatus(useWizardStatusClient({ url: "wss://example.test/ws/wizard-status/" }));
const refs = useWizardStatusRefs(client);
void [label, direction, refused.retryAfter, hook.state, refs.status.value?.version];
