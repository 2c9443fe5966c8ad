/**
 * Settings of the API and the agent event streams (`GET /calls/{CallSid}/events`, `GET /events`):
 * the token that opens them, which account a subscriber's token opens, and the flow-control
 * bounds (`subscribers.ts`). Read with the rest of the edge's config (`config.ts`).
 */
import { equalSecrets, readSettings, setting } from "@ozen/shared";
import type { SettingsEnv } from "@ozen/shared";

export interface SubscriptionConfig {
  /** The bearer token of the call API, the records API and the event streams; "" when unset (they answer 503). */
  readonly apiToken: string;
  /** Events sent to a subscriber and not yet acknowledged (`{"ack":N}`), at most. */
  readonly windowEvents: number;
  /** Events waiting at the edge for one subscriber, at most; past it partials are dropped. */
  readonly bufferEvents: number;
  /** The account a subscriber's token opens, or undefined for an unknown token. */
  accountFor(token: string): string | undefined;
  /** Whether `token` (one that opens an account) may control calls (`docs/agent-control.md`). */
  mayControl(token: string): boolean;
}

/** The only account until accounts are configured: the one `API_TOKEN` opens. */
export const DEFAULT_ACCOUNT = "default";

export const SUBSCRIPTION_SETTINGS = {
  API_TOKEN: setting.secret({
    description: "Bearer token for the APIs and the event streams (`?token=` too on their WebSocket upgrades).",
  }),
  EVENTS_TOKEN: setting.secret({
    description:
      "A read-only token for the event streams (e.g. the live page): it reads events but never controls a call.",
  }),
  AGENT_CONTROL: setting.bool({
    description:
      "`on`: `API_TOKEN` may control a call's voice (`?control=1`, `POST /calls/{CallSid}/play`); `off`: no token may.",
    default: true,
  }),
  SUBSCRIBER_WINDOW: setting.int({
    description: 'Events sent to an agent subscriber and not yet acknowledged (`{"ack":N}`), at most.',
    default: 64,
    min: 1,
    max: 10_000,
  }),
  SUBSCRIBER_BUFFER: setting.int({
    description:
      "Events waiting per subscriber; past it partials are dropped, and one behind on finals is closed (4008).",
    default: 256,
    min: 1,
    max: 100_000,
  }),
} as const;

export function loadSubscriptionConfig(env: SettingsEnv): SubscriptionConfig {
  const s = readSettings(SUBSCRIPTION_SETTINGS, env);
  const apiToken = s.API_TOKEN ?? "";
  const eventsToken = s.EVENTS_TOKEN ?? "";
  return {
    apiToken,
    windowEvents: s.SUBSCRIBER_WINDOW,
    bufferEvents: s.SUBSCRIBER_BUFFER,
    accountFor: (token) =>
      equalSecrets(token, apiToken) || (eventsToken !== "" && equalSecrets(token, eventsToken))
        ? DEFAULT_ACCOUNT
        : undefined,
    // only the full token controls; the read-only one never does
    mayControl: (token) => s.AGENT_CONTROL && equalSecrets(token, apiToken),
  };
}
