/**
 * Settings of the agent event streams (`GET /calls/{CallSid}/events`, `GET /events`): who may
 * subscribe and the flow-control bounds (`subscribers.ts`). Read with the rest of the edge's
 * config (`config.ts`); every setting is in the README table.
 */

export interface SubscriptionConfig {
  /** Events sent to a subscriber and not yet acknowledged (`{"ack":N}`), at most. */
  readonly windowEvents: number;
  /** Events waiting at the edge for one subscriber, at most; past it partials are dropped. */
  readonly bufferEvents: number;
  /** The account a subscriber's token opens, or undefined for an unknown token. */
  accountFor(token: string): string | undefined;
}

/** The only account until accounts are configured: the one `API_TOKEN` opens. */
export const DEFAULT_ACCOUNT = "default";

type Read = {
  str(key: string, fallback?: string): string;
  int(key: string, fallback: number, min: number, max: number): number;
};

export function loadSubscriptionConfig(read: Read, apiToken: string): SubscriptionConfig {
  return {
    windowEvents: read.int("SUBSCRIBER_WINDOW", 64, 1, 10_000),
    bufferEvents: read.int("SUBSCRIBER_BUFFER", 256, 1, 100_000),
    accountFor: (token) => (apiToken !== "" && timingSafeEqual(token, apiToken) ? DEFAULT_ACCOUNT : undefined),
  };
}

/** String equality in time independent of where they differ (token checks). */
function timingSafeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}
