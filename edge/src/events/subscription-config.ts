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
}

/** The only account until accounts are configured: the one `API_TOKEN` opens. */
export const DEFAULT_ACCOUNT = "default";

export const SUBSCRIPTION_SETTINGS = {
  API_TOKEN: setting.secret({
    description: "Bearer token for the APIs and the event streams (`?token=` too on their WebSocket upgrades).",
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
  return {
    apiToken,
    windowEvents: s.SUBSCRIBER_WINDOW,
    bufferEvents: s.SUBSCRIBER_BUFFER,
    accountFor: (token) => (equalSecrets(token, apiToken) ? DEFAULT_ACCOUNT : undefined),
  };
}
