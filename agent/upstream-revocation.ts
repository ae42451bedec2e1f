import { createHash } from "node:crypto";
import { DEFAULT_AGENT_EGRESS, type FetchLike } from "@/lib/net/agent";
import type { BundleServer } from "@/lib/enforcement/bundle";
import { redactUrl } from "@/lib/enforcement/redact";
import type { Metrics } from "./metrics";
import type { Principal } from "./token";

/** Tokens remembered as already sent for revocation (oldest forgotten first). */
const MAX_REMEMBERED = 10_000;

/**
 * The issuer's RFC 7009 endpoint as the principal's own tenant configured it
 * in its trust entry: never another tenant's (or the server owner's), who
 * would otherwise receive this tenant's tokens.
 */
export function revocationEndpointOf(server: BundleServer, issuer: string, tenantId: string): string | null {
  return (server.trust ?? []).find((t) => t.issuer === issuer && t.tenantId === tenantId)?.revocationEndpoint || null;
}

/**
 * Tells the authorization server about a token the agent refused because its
 * grant was revoked (RFC 7009): one POST per token (deduplicated by its
 * SHA-256 in a bounded map), best effort, counted in
 * mandate_upstream_revocations_total{result}. The token is never logged.
 */
export class UpstreamRevoker {
  private readonly sent = new Map<string, true>();
  private readonly fetch: FetchLike;
  /** Requests still running (tests await them). */
  readonly pending = new Set<Promise<void>>();

  /** `fetch`: through the egress guard (lib/net/agent.ts; main passes the agent's own). */
  constructor(private readonly o: { metrics: Metrics; log: (msg: string) => void; fetch?: FetchLike; timeoutMs?: number }) {
    this.fetch = o.fetch ?? DEFAULT_AGENT_EGRESS.fetch;
  }

  /** Fire and forget; returns the request's promise (never rejects), or null when nothing is sent. */
  revoke(token: string, principal: Principal, server: BundleServer): Promise<void> | null {
    const endpoint = revocationEndpointOf(server, principal.issuer, principal.tenantId);
    if (!endpoint) return null;
    const hash = createHash("sha256").update(token).digest("hex");
    if (this.sent.has(hash)) return null;
    this.sent.set(hash, true);
    if (this.sent.size > MAX_REMEMBERED) this.sent.delete(this.sent.keys().next().value!);
    const body = new URLSearchParams({ token, token_type_hint: "access_token", client_id: principal.client });
    const p = this.fetch(endpoint, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
      body: body.toString(),
      signal: AbortSignal.timeout(this.o.timeoutMs ?? 10_000),
      redirect: "manual",
    })
      .then(async (res) => {
        const body = res.status === 200 ? (await res.body?.cancel(), null) : ((await res.json().catch(() => null)) as { error?: unknown } | null);
        // RFC 7009 §2.2: 200 whether or not the token was known; §2.2.1: the server may not revoke this type (e.g. JWT access tokens).
        const result = res.status === 200 ? "ok" : res.status === 400 && body?.error === "unsupported_token_type" ? "unsupported" : "error";
        this.o.metrics.upstreamRevocation(result);
        if (result === "error") this.o.log(`revocation at ${redactUrl(endpoint)} for client ${principal.client} answered ${res.status} (token sha256 ${hash.slice(0, 12)})`);
      })
      .catch((err: unknown) => {
        this.o.metrics.upstreamRevocation("error");
        this.o.log(`revocation at ${redactUrl(endpoint)} failed: ${err instanceof Error ? err.name : "error"} (token sha256 ${hash.slice(0, 12)})`);
      })
      .finally(() => this.pending.delete(p));
    this.pending.add(p);
    return p;
  }
}
