import type { EdgeConfig } from "./config.js";

/** The Worker's bindings (wrangler.toml): the Durable Object namespaces, D1, and the vars and secrets. */
export interface Env {
  readonly CALL_SESSION: DurableObjectNamespace;
  readonly NAIVE_SESSION: DurableObjectNamespace;
  readonly EDGE_METRICS: DurableObjectNamespace;
  readonly ACCOUNT_HUB: DurableObjectNamespace;
  /** D1 with the call records (infra/d1/migrations); without it records stay in each call's object. */
  readonly DB?: D1Database;
  /** Settings (`[vars]` and secrets), read and validated by `config.ts`. */
  readonly [key: string]: unknown;
}

/** The hono app's types: the bindings, this isolate's config, the account a token opened and whether it may control calls (`auth.ts`). */
export type AppEnv = { Bindings: Env; Variables: { config: EdgeConfig; account: string; mayControl: boolean } };
