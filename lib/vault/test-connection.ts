import "server-only";
import { and, count, eq, gt, sql } from "drizzle-orm";
import { auditEvents, vaultVersions } from "@/db/schema";
import type { Kek } from "@/lib/bundles/signing";
import type { Ctx } from "@/lib/context";
import { redactUrl } from "@/lib/enforcement/redact";
import { fetchUpstreamTools, type FetchLike } from "@/lib/enforcement/upstream-tools";
import { AppError, conflict } from "@/lib/errors";
import { createEgressFetch, EgressError } from "@/lib/net/egress";
import { egressPolicy } from "@/lib/net/policy";
import { recordEvent } from "@/lib/trail/record";
import { isSuspended, upstreamOrigin } from "./binding";
import { openSecret } from "./crypto";
import { loadEntry } from "./service";
import { placeUpstreamCredential } from "./upstream-auth";

/*
 * "Test connection" on a vault entry: the control plane calls the server's
 * upstream with this entry's current secret, placed as the agent places it,
 * through the egress guard (the catalogue import's path: an MCP initialize
 * and tools/list with the official SDK client), and says whether it worked
 * or what failed (the upstream refused the credential, TLS, timeout, DNS,
 * connection, not an MCP server). Never a peer's body, never the secret.
 *
 * It opens a secret, so it needs vault.write in the entry's own tenant (as
 * rotating it does), is recorded in the trail (`vault.test_connection`, the
 * version and the outcome-free facts), and is limited per user across
 * replicas: the trail rows of the last minute are counted under a
 * per-user advisory lock.
 */

export const TEST_CONNECTION_LIMIT = 5;
export const TEST_CONNECTION_WINDOW_SECONDS = 60;
const TIMEOUT_MS = 10_000;
const MAX_ANSWER_BYTES = 4 * 1024 * 1024;

export type ConnectionFailure = "unauthorized" | "http_status" | "tls" | "timeout" | "dns" | "connect" | "refused_address" | "redirect" | "credential" | "protocol";

export type ConnectionResult =
  | { ok: true; entryId: string; version: number; upstream: string; testedAt: string; latencyMs: number; toolCount: number }
  | { ok: false; entryId: string; version: number; upstream: string; testedAt: string; latencyMs: number; failure: ConnectionFailure; status: number | null; message: string };

/** Counts this user's tests in the window and records this one, or refuses (429) when the limit is reached. */
async function admit(ctx: Ctx, entry: { id: string }, adminTenant: string, facts: Record<string, unknown>, now: Date): Promise<void> {
  await ctx.db.transaction(async (tx) => {
    // One user's concurrent requests queue here, so the count cannot be raced past the limit.
    await tx.execute(sql`select pg_advisory_xact_lock(hashtext(${`vault.test_connection:${ctx.actor.userId}`}))`);
    const since = new Date(now.getTime() - TEST_CONNECTION_WINDOW_SECONDS * 1000);
    const [row] = await tx
      .select({ n: count() })
      .from(auditEvents)
      .where(and(eq(auditEvents.action, "vault.test_connection"), gt(auditEvents.at, since), sql`${auditEvents.after}->>'userId' = ${ctx.actor.userId}`));
    if ((row?.n ?? 0) >= TEST_CONNECTION_LIMIT) {
      throw new AppError("rate_limited", `You can test connections ${TEST_CONNECTION_LIMIT} times a minute: wait a minute, then try again`);
    }
    await recordEvent(tx, ctx.actor, { action: "vault.test_connection", targetType: "vault_entry", targetId: entry.id, tenantId: adminTenant, after: { ...facts, userId: ctx.actor.userId } });
  });
}

/** Tries the upstream with the entry's current secret; the answer says what happened, never with a body or the secret. */
export async function testConnection(ctx: Ctx, entryId: string, keyring: () => readonly Kek[], now = new Date()): Promise<ConnectionResult> {
  const { entry, server, adminTenant } = await loadEntry(ctx, entryId, true);
  if (entry.status === "retired") throw conflict("This entry is retired: there is no secret to test");
  if (isSuspended(entry, server.upstreamUrl)) {
    throw conflict(
      `This entry is suspended: it was stored for ${entry.boundOrigin || "another upstream"} and the upstream is now ${upstreamOrigin(server.upstreamUrl)}. It is not sent there: rotate or confirm it first`,
    );
  }
  if (entry.kind === "oauth_token_exchange") {
    throw conflict("A token-exchange entry is exchanged per user at the agent: the control plane has no user token to test it with");
  }
  if (entry.kind === "oauth_user_brokered") {
    throw conflict(
      "A brokered per-user entry is sent with each user's own upstream token: the control plane has no user token to test it with. Connect as a user (Connections) and call a tool through the agent instead",
    );
  }
  const [v] = await ctx.db
    .select()
    .from(vaultVersions)
    .where(and(eq(vaultVersions.entryId, entry.id), eq(vaultVersions.version, entry.currentVersion), eq(vaultVersions.status, "current")));
  if (!v) throw conflict("This entry has no current version: rotate it");
  const upstream = redactUrl(server.upstreamUrl);
  await admit(ctx, entry, adminTenant, { version: v.version, serverId: server.id, upstream: upstreamOrigin(server.upstreamUrl) }, now);

  const started = performance.now();
  const base = { entryId: entry.id, version: v.version, upstream, testedAt: now.toISOString() };
  const elapsed = () => Math.round(performance.now() - started);
  const egress = createEgressFetch({ policy: egressPolicy(), timeoutMs: TIMEOUT_MS, maxBytes: MAX_ANSWER_BYTES });
  // What happened on the wire, kept apart from the SDK's messages (which may quote a body).
  let refused: number | undefined;
  let otherStatus: number | undefined;
  let transport: EgressError | undefined;
  const watching: FetchLike = async (u, init) => {
    try {
      const res = await egress(u, init);
      if (res.status === 401 || res.status === 403) refused ??= res.status;
      else if (!res.ok && !(res.status === 405 && (init?.method ?? "GET") === "GET")) otherStatus ??= res.status;
      return res;
    } catch (err) {
      if (err instanceof EgressError) transport ??= err;
      throw err;
    }
  };
  try {
    const secret = openSecret(keyring(), entry.id, v.version, v);
    let auth;
    try {
      auth = await placeUpstreamCredential(
        { entryId: entry.id, entryName: entry.name, kind: entry.kind, placement: entry.placement, version: v.version, secret, oauth: entry.oauth ?? null },
        server.upstreamUrl,
        watching,
      );
    } catch (err) {
      // The OAuth token endpoint (client credentials): its own message names the entry and the status, never a body.
      return { ...base, ok: false, latencyMs: elapsed(), failure: "credential", status: refused ?? otherStatus ?? null, message: err instanceof AppError ? err.message : "The token endpoint failed" };
    }
    refused = otherStatus = transport = undefined;
    const tools = await fetchUpstreamTools(auth.url, { fetch: watching, headers: auth.headers, timeoutMs: TIMEOUT_MS });
    return { ...base, ok: true, latencyMs: elapsed(), toolCount: tools.length };
  } catch (err) {
    return { ...base, ok: false, latencyMs: elapsed(), ...classify(err, { refused, otherStatus, transport }, upstream) };
  }
}

/** The failure as a kind, a status and a sentence saying what to check. */
function classify(err: unknown, seen: { refused?: number; otherStatus?: number; transport?: EgressError }, upstream: string): { failure: ConnectionFailure; status: number | null; message: string } {
  if (seen.refused !== undefined)
    return {
      failure: "unauthorized",
      status: seen.refused,
      message: `The upstream refused this credential (HTTP ${seen.refused} from ${upstream}): check that the secret is right and still valid upstream, or rotate it`,
    };
  const t = seen.transport ?? (err instanceof EgressError ? err : undefined);
  if (t) {
    const say: Record<EgressError["code"], [ConnectionFailure, string]> = {
      timeout: ["timeout", `The upstream did not answer within ${TIMEOUT_MS / 1000} s (${upstream})`],
      tls: ["tls", `TLS with the upstream failed: ${t.message}. Check its certificate`],
      dns: ["dns", `The upstream's host could not be resolved: ${t.message}. Check the server's upstream URL`],
      connect: ["connect", `The upstream refused the connection: ${t.message}. Is it running?`],
      refused_address: ["refused_address", `Egress does not allow this address: ${t.message}. An operator can allow it with MANDATE_EGRESS_ALLOW`],
      redirect: ["redirect", `${t.message}: set the server's upstream URL to where it redirects`],
      http_status: ["http_status", `The upstream answered HTTP ${t.status ?? "error"} (${upstream})`],
      too_large: ["protocol", `The upstream's answer was too large (${upstream})`],
      bad_url: ["protocol", `The server's upstream URL cannot be fetched: ${t.message}`],
      failed: ["connect", `The request to the upstream failed (${upstream})`],
    };
    const [failure, message] = say[t.code];
    return { failure, status: t.status ?? null, message };
  }
  if (seen.otherStatus !== undefined)
    return { failure: "http_status", status: seen.otherStatus, message: `The upstream answered HTTP ${seen.otherStatus} (${upstream}): it is reachable, but did not accept the MCP request` };
  // fetchUpstreamTools' own message: what failed, from what Mandate observed, with the URL redacted.
  return { failure: "protocol", status: null, message: err instanceof AppError ? err.message : `The upstream did not answer as an MCP server (${upstream})` };
}
