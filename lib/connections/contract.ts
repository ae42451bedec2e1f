import { z } from "zod";

/**
 * The agent ↔ control-plane contract of brokered per-user OAuth (issue 13):
 * `POST /api/v1/agent/connections/token`. One schema, imported by both ends
 * (agent/connections.ts and lib/connections/service.ts). Pure: no server code.
 *
 * The agent asks for the user's upstream access token for one call; the
 * control plane answers a short-lived access token (refreshing it with the
 * refresh token it keeps, which never leaves it), or where the user must go
 * to connect (the URL of a connect request filed for exactly this tenant,
 * server and user).
 */

/** Longest access token passed to an agent (JWTs of real ASes are a few KiB). */
export const MAX_ACCESS_TOKEN_CHARS = 16 * 1024;
/** An agent keeps an access token at most this long, whatever its lifetime. */
export const MAX_AGENT_TOKEN_TTL_SECONDS = 600;

export const connectionTokenInput = z
  .object({
    serverId: z.string().min(1).max(100),
    tenantId: z.string().min(1).max(100),
    user: z.string().min(1).max(1000).describe("The caller as the agent's validated principal names it: `<issuer>#<subject>`"),
  })
  .strict();
export type ConnectionTokenInput = z.infer<typeof connectionTokenInput>;

export const connectReasons = ["none", "broken", "disconnected", "revoked"] as const;

export const connectionTokenAnswer = z.discriminatedUnion("status", [
  z
    .object({
      status: z.literal("ok"),
      connectionId: z.string().max(100),
      entryId: z.string().max(100),
      accessToken: z.string().min(1).max(MAX_ACCESS_TOKEN_CHARS).describe("SECRET: the user's upstream access token"),
      /** Until when the agent may use it (the token's expiry less a margin, at most MAX_AGENT_TOKEN_TTL_SECONDS from now). */
      useUntil: z.iso.datetime({ offset: true }),
    })
    .strict(),
  z
    .object({
      status: z.literal("connect"),
      requestId: z.string().max(100),
      url: z.url().max(2048),
      expiresAt: z.iso.datetime({ offset: true }),
      reason: z.enum(connectReasons),
    })
    .strict(),
]);
export type ConnectionTokenAnswer = z.infer<typeof connectionTokenAnswer>;

export type { BundleConnectionCut } from "@/lib/enforcement/bundle";

/** The control plane's connect page of a request. */
export const connectPageUrl = (origin: string, id: string) => `${origin.replace(/\/+$/, "")}/connect/${encodeURIComponent(id)}`;
