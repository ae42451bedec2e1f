import "server-only";
import { and, eq, isNull, or } from "drizzle-orm";
import type { Db } from "@/db/client";
import { vaultEntries, vaultVersions, type CredentialKind, type CredentialPlacement, type OAuthClientConfig } from "@/db/schema";
import type { Actor } from "@/lib/auth/permissions";
import type { Kek } from "@/lib/bundles/signing";
import { AppError } from "@/lib/errors";
import { EgressError } from "@/lib/net/egress";
import { clientCredentialsRequest, clientSecretOf, placeCredential, readTokenAnswer, staticCredentialValue } from "@/lib/enforcement/upstream-credential";
import { recordEvent } from "@/lib/trail/record";
import { isSuspended, upstreamOrigin } from "./binding";
import { openSecret, type SecretPayload } from "./crypto";

/*
 * The control plane's own use of an upstream credential: catalogue import and
 * drift checks (lib/catalog/service.ts) call the upstream with the vault entry
 * of the server's OWNING tenant (its own entry, else the shared one), placed
 * exactly as the agent places it (agent/credentials.ts `render`, `exchange`,
 * `inject`). That logic is duplicated here because agent/ must not be edited
 * by this change; both should move to one pure module later.
 *
 * Every read of a secret writes an admin-trail row (`vault.read`, never the
 * value). A suspended entry (the upstream moved to another origin) is never
 * opened nor sent.
 */

/** Holds a secret: never log it, never return it from an API. */
export interface UpstreamCredential {
  entryId: string;
  entryName: string;
  kind: CredentialKind;
  placement: CredentialPlacement;
  version: number;
  secret: SecretPayload;
  oauth: OAuthClientConfig | null;
}

/** Where the credential goes on every upstream request. Holds a secret. */
export interface UpstreamAuth {
  entryId: string;
  entryName: string;
  /** The URL to call (a query credential is in it: only ever shown redacted). */
  url: string;
  headers: Record<string, string>;
}

/**
 * Opens the vault entry the control plane uses for `server`: the owning
 * tenant's own entry, else the server's shared one; null when there is none.
 * Throws a conflict when that entry is suspended (never falls back to another
 * entry) or has no usable current version. Records `vault.read` in the trail.
 */
export async function openUpstreamCredential(
  db: Db,
  actor: Actor,
  server: { id: string; tenantId: string; upstreamUrl: string },
  keyring: () => readonly Kek[],
  purpose: string,
): Promise<UpstreamCredential | null> {
  const candidates = await db
    .select({ entry: vaultEntries, v: vaultVersions })
    .from(vaultEntries)
    .leftJoin(vaultVersions, and(eq(vaultVersions.entryId, vaultEntries.id), eq(vaultVersions.version, vaultEntries.currentVersion)))
    .where(and(eq(vaultEntries.serverId, server.id), eq(vaultEntries.status, "active"), or(eq(vaultEntries.tenantId, server.tenantId), isNull(vaultEntries.tenantId))));
  const picked = candidates.find((c) => c.entry.tenantId === server.tenantId) ?? candidates.find((c) => c.entry.tenantId === null);
  if (!picked) return null;
  const { entry, v } = picked;
  if (isSuspended(entry, server.upstreamUrl)) {
    throw new AppError(
      "conflict",
      `The vault entry "${entry.name}" is suspended since the upstream moved (stored for ${entry.boundOrigin || "another upstream"}, the upstream is now ${upstreamOrigin(server.upstreamUrl) || "unknown"}); confirm it for the new origin or re-enter it. It was not sent.`,
    );
  }
  if (!v || v.status !== "current") throw new AppError("conflict", `The vault entry "${entry.name}" has no current version; rotate it`);
  const secret = openSecret(keyring(), entry.id, v.version, v);
  await recordEvent(db, actor, {
    action: "vault.read",
    targetType: "vault_entry",
    targetId: entry.id,
    tenantId: entry.tenantId ?? server.tenantId,
    after: { version: v.version, serverId: server.id, purpose },
  });
  return { entryId: entry.id, entryName: entry.name, kind: entry.kind, placement: entry.placement, version: v.version, secret, oauth: entry.oauth ?? null };
}

type FetchLike = (url: string | URL, init?: RequestInit) => Promise<Response>;

/**
 * The URL and headers of upstream requests carrying `cred` (the agent's
 * placement: api_key as is, bearer as `Bearer …` in a header, basic as
 * `Basic base64(user:password)`, OAuth client credentials exchanged at the
 * entry's token endpoint through `fetch`, the egress guard, for `Bearer …`).
 * Errors name the entry and what failed, never a secret or a peer's body.
 */
export async function placeUpstreamCredential(cred: UpstreamCredential, url: string, fetch: FetchLike): Promise<UpstreamAuth> {
  let value: string;
  if (cred.kind === "oauth_client_credentials") {
    value = `Bearer ${await exchange(cred, fetch)}`;
  } else if (cred.kind === "oauth_token_exchange") {
    // Exchanged per user at the agent: there is no user's token to exchange here.
    throw new AppError("upstream_error", `The vault entry "${cred.entryName}" is a per-user token exchange; the control plane has no user token to exchange for this upstream`);
  } else if (cred.kind === "oauth_user_brokered") {
    // Each user's own token: catalogue import has no user (lib/connections).
    throw new AppError(
      "upstream_error",
      `The vault entry "${cred.entryName}" is brokered per user (each user's own upstream token); import has no user token for this upstream: add the tools by hand or import before storing the entry`,
    );
  } else {
    const v = staticCredentialValue(cred.kind, cred.placement, cred.secret);
    if ("problem" in v) throw broken(cred, v.problem);
    value = v.value;
  }
  const headers: Record<string, string> = {};
  const target = placeCredential(url, headers, cred.placement, value);
  return { entryId: cred.entryId, entryName: cred.entryName, url: target, headers };
}

function broken(cred: UpstreamCredential, what: string): AppError {
  return new AppError("upstream_error", `The vault entry "${cred.entryName}" holds ${what}; re-enter it`);
}

/** RFC 6749 §4.4 at the entry's token endpoint (lib/enforcement/upstream-credential.ts); the access token only (held in memory for this import). */
async function exchange(cred: UpstreamCredential, fetch: FetchLike): Promise<string> {
  const oauth = cred.oauth;
  const secret = clientSecretOf(cred.secret);
  if (!oauth || !secret) throw broken(cred, "OAuth client credentials without a token endpoint or client secret");
  const { url, init } = clientCredentialsRequest(oauth, secret);
  let res: Response;
  try {
    res = await fetch(url, init);
  } catch (err) {
    const why = err instanceof EgressError ? err.message : "the request failed";
    throw new AppError("upstream_error", `The token endpoint of the vault entry "${cred.entryName}" could not be reached: ${why}`);
  }
  const answer = readTokenAnswer(res.status, await res.json().catch(() => null));
  if ("problem" in answer) {
    // The OAuth error code only (a registered token, RFC 6749 §5.2), never the body.
    const code = answer.code ? ` (${answer.code})` : "";
    if (answer.problem === "token_type") throw new AppError("upstream_error", `The token endpoint of the vault entry "${cred.entryName}" issued an unsupported token type`);
    throw new AppError(
      "upstream_error",
      answer.problem === "refused"
        ? `The token endpoint refused the client credentials of the vault entry "${cred.entryName}": HTTP ${answer.status}${code}`
        : `The token endpoint of the vault entry "${cred.entryName}" answered HTTP ${answer.status}${code}`,
    );
  }
  return answer.accessToken;
}
