// Types of wizard-status.js: the status object, every frame, the options and the events.

export type Requirement =
  | "first_name" | "last_name" | "phone_number" | "business_type" | "manual_prompt" | "channel_connected";

export type DetailKey = Requirement | "instagram_connected" | "telegram_connected";

/** Contract section 1: sent on the socket, returned by the HTTP fallback, kept in the history. */
export interface WizardStatus {
  type: "wizard_status";
  wizard_complete: boolean;
  can_complete: boolean;
  /** Unmet requirements, in canonical order. */
  missing_fields: Requirement[];
  details: Record<DetailKey, boolean>;
  /** The server's figure: requirements met of 6. Never count `details` yourself. */
  progress: { completed: number; total: number; percent: number };
  /** Per user, strictly increasing over committed changes; the same version is the same status. */
  version: number;
  /** ISO 8601 UTC with milliseconds and `Z`. */
  timestamp: string;
}

export type ErrorCode = "invalid_json" | "invalid_message" | "unknown_type" | "rate_limited";

export interface ErrorFrame {
  type: "error";
  code: ErrorCode | (string & {});
  detail: string;
  /** Seconds, with `rate_limited`. */
  retry_after?: number;
}

export interface PongFrame {
  type: "pong";
  timestamp: string;
}

export type ServerFrame = WizardStatus | ErrorFrame | PongFrame;
export type ClientFrame = { type: "refresh" } | { type: "ping" };

export type ConnectionState =
  | "connecting"    // first attempt, no status yet
  | "open"          // this connection delivered its first status
  | "reconnecting"  // waiting for, or making, another attempt
  | "offline"       // the browser is offline: no attempts until it is back
  | "polling"       // sockets do not get through: the status comes over HTTP meanwhile
  | "unauthorized"  // credentials refused (3 × 4401, or the ticket call answered 401)
  | "forbidden"     // 4403: the user is inactive
  | "closed";       // client.close()

export interface WizardStatusClientOptions {
  /** Default: ws(s)://<page host>/ws/wizard-status/ */
  url?: string;
  /** Called before EVERY connection attempt; returns a one-time ticket or throws (see `CredentialError`). */
  ticket?: () => Promise<string>;
  /** Or: an access token, called before every attempt (also sent as Bearer by the HTTP fallback). */
  token?: () => string | Promise<string>;
  /** For the HTTP fallback's requests (headers, credentials); default: the cookie. */
  fetchOptions?: RequestInit;
  /** Default: /api/v1/accounts/wizard-status on the socket's host. */
  pollUrl?: string;
  /** Default true; false: call `connect()` yourself. */
  autoConnect?: boolean;
  /** Default true: one socket per browser for all tabs with the same `url`. */
  shareAcrossTabs?: boolean;
}

export interface WizardStatusEvents {
  status: WizardStatus;
  state: ConnectionState;
  error: ErrorFrame;
}

export class WizardStatusClient {
  constructor(options?: WizardStatusClientOptions);
  readonly url: string;
  /** The newest status seen, or null before the first. */
  readonly status: WizardStatus | null;
  readonly state: ConnectionState;
  /** Returns an unsubscribe function. `status` fires only for a higher version than the last. */
  on<E extends keyof WizardStatusEvents>(event: E, listener: (value: WizardStatusEvents[E]) => void): () => void;
  /** Starts (with `autoConnect: false`), or starts again after "unauthorized" / "forbidden". */
  connect(): void;
  /** Asks for the current status (over the socket, or a poll). */
  refresh(): void;
  /** Ends it for good: state "closed". */
  close(): void;
}

/** Thrown by `ticket`/`token` functions: 401 stops in "unauthorized", 403 counts as a 4401, 429 waits `retryAfter`. */
export class CredentialError extends Error {
  constructor(message: string, status: number, retryAfter?: number);
  readonly status: number;
  /** Seconds. */
  readonly retryAfter?: number;
}

/**
 * A ready `ticket` function: POSTs the ticket endpoint with the cookie and its CSRF token, or
 * the headers given. `{ticket: fetchTicket}`, or `{ticket: () => fetchTicket({headers})}`.
 */
export function fetchTicket(fetchOptions?: RequestInit, endpoint?: string): Promise<string>;

export const REQUIREMENTS: readonly Requirement[];
/** The guide's field labels, keyed by language then requirement. */
export const LABELS: Readonly<Record<"en" | "tr" | "ar", Readonly<Record<Requirement, string>>>>;
export function textDirection(lang: string): "ltr" | "rtl";

export const CLOSE_CODES: Readonly<{ SERVICE_RESTART: 1012; UNAUTHORIZED: 4401; FORBIDDEN: 4403; TOO_MANY: 4429 }>;
/** Milliseconds. */
export const TIMING: Readonly<{
  backoffBase: number; backoffCap: number; pingAfter: number; deadAfter: number;
  pollMin: number; pollMax: number;
}>;
