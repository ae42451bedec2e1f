import { createHash } from "node:crypto";
import canonicalize from "canonicalize";
import { compactVerify, importJWK, type JWK } from "jose";
import type { BundleApproval } from "./approval";
import type { SchemaJson } from "./cedar";
import type { CatalogueKind } from "./catalogue-entry";
import type { TenantMappingRule } from "./claims";
import type { ProtectedResourceMetadata } from "./prm";

export const BUNDLE_FORMAT = 1;

export interface BundleServer {
  id: string;
  name: string;
  tenantId: string;
  tenantIds: string[];
  resourceUri: string;
  upstreamUrl: string;
  scopes: string[];
  /** The authorization servers the server advertises (PRM). Not trust: tokens are validated against `trust` only. */
  issuers: { issuer: string; jwksUri?: string; discovery: boolean; algorithms: string[]; claims: { tenant: string; user: string; client: string; scopes: string }; revocationEndpoint?: string }[];
  /**
   * Trust is granted by a tenant: the issuers each tenant of `tenantIds`
   * trusts, with that tenant's own key source and tenant mapping. A token acts
   * for a tenant only through one of that tenant's entries (lib/enforcement/token.ts).
   */
  trust: BundleTrust[];
  prm: ProtectedResourceMetadata;
  /** Sender-constrained tokens (RFC 9449, lib/enforcement/dpop.ts); absent means "off" (bundles from before DPoP hash as before). */
  dpop?: "allowed" | "required";
  /**
   * RFC 9449 section 9: DPoP proofs must carry a nonce the agent issued (answered 401 use_dpop_nonce with a
   * DPoP-Nonce header otherwise). Present only with `dpop`; absent means off (bundles hash as before).
   */
  dpopNonce?: true;
  /**
   * logging/setLevel and the upstream's notifications/message pass the agent (lib/enforcement/decide.ts,
   * agent/proxy.ts). Absent means off: an upstream's log can carry the credential the agent injects.
   */
  upstreamLogging?: true;
}

/** How a token of a trusted issuer maps to the tenant that trusts it. */
export type BundleTenantMapping = TenantMappingRule;

/** One issuer trusted by one tenant (the tenant_issuers row, nothing secret). */
export interface BundleTrust {
  tenantId: string;
  issuer: string;
  jwksUri?: string;
  discovery: boolean;
  algorithms: string[];
  /** Claim paths (a literal claim name first, then dot-separated nesting such as `realm_access.roles`). */
  claims: { user: string; client: string; scopes: string; groups: string };
  tenantMapping: BundleTenantMapping;
  /** RFC 9068: refuse tokens whose JOSE `typ` is not `at+jwt`. */
  requireTyp?: "at+jwt";
  revocationEndpoint?: string;
}

/**
 * One approved catalogue entry. `kind` absent means a tool (bundles from
 * before resources and prompts were catalogued). `name` is the entry's key:
 * the tool or prompt name, the resource URI, or the resource template's URI
 * template. A prompt's `inputSchema` is its declared arguments (strings, see
 * lib/enforcement/catalogue-entry.ts promptInputSchema); resources and
 * templates have `{ type: "object" }`.
 */
export interface BundleTool {
  kind?: CatalogueKind;
  serverId: string;
  name: string;
  /** Resources and templates: the `name` the upstream lists (a display name; `name` above is the URI). */
  label?: string;
  /** Resources and templates: the MIME type the upstream lists, if any. */
  mimeType?: string | null;
  hash: string;
  title: string | null;
  description: string;
  risk: string;
  annotations: Record<string, unknown>;
  inputSchema: Record<string, unknown>;
}

export interface BundlePolicyMeta {
  name: string;
  kind: "scope" | "rule" | "cedar" | "builtin";
  tenantId: string | null;
  serverId: string;
  /**
   * The tools it can apply to (null: any entry of its server); lets the engine evaluate only
   * relevant policies. Non-null only when the policy requires the resource to be one of these
   * Tool entities, so it never applies to a resource, template or prompt.
   */
  tools: string[] | null;
  /** For kind "scope": the OAuth scope whose mapping this policy is (step-up challenges name it; lib/enforcement/decide.ts). */
  scope?: string;
  /** A forbid annotated `@approval("<group>")`: it asks for a person's approval instead of denying (lib/enforcement/approval.ts). */
  approval?: { approvers: string[] };
}

/** Everything an agent needs to enforce, and nothing secret. */
export interface BundleContent {
  manifest: { format: number; fleetId: string; revision: number; parentRevision: number | null; createdAt: string; compilerVersion: string };
  servers: BundleServer[];
  catalogue: BundleTool[];
  cedar: {
    schema: SchemaJson<string>;
    /** Policy id → Cedar text, already confined to its tenant and server. */
    policies: Record<string, string>;
    /** Static entities: servers and tools with their attributes. */
    entities: { uid: { type: string; id: string }; attrs: Record<string, unknown>; parents: { type: string; id: string }[] }[];
  };
  policies: Record<string, BundlePolicyMeta>;
  /**
   * Live sections: republished at once (a new signed revision over the live
   * content) when an admin revokes, approves a client, rotates a credential or
   * changes masking; see lib/bundles/live.ts. Older bundles may lack the
   * optional ones: agents read them with `?? []`.
   */
  /** "Reject tokens of (user, client, server) in this tenant issued before t". */
  revocations: BundleRevocation[];
  approvedClients: { tenantId: string; clientId: string }[];
  /** Tenants that deny calls from any client not in approvedClients. */
  clientApproval?: string[];
  /** Upstream credentials the agent resolves through the broker: which entry, where it goes, its current version. Never the secret. */
  credentials?: BundleCredential[];
  masking: BundleMaskingRule[];
  /** Decided approval requests (approved or rejected), until a while after they expire (lib/enforcement/approval.ts). */
  approvals?: BundleApproval[];
  /** Ended brokered per-user OAuth connections (lib/connections): agents drop the user's access token fetched before the cut. Absent when none. */
  connectionCuts?: BundleConnectionCut[];
}

/** A live-section line: access tokens of (tenant, server, user) an agent fetched before `before` are dropped (disconnect, revocation, failed refresh of a brokered connection). */
export interface BundleConnectionCut {
  tenantId: string;
  serverId: string;
  user: string;
  /** ISO time the connection ended. */
  before: string;
}

export interface BundleRevocation {
  tenantId?: string;
  user?: string;
  client?: string;
  serverId?: string;
  /** ISO time: tokens issued (iat) before it are refused. */
  before: string;
}

export interface BundleCredential {
  entryId: string;
  serverId: string;
  /** null: the entry every tenant of the server uses unless it has its own. */
  tenantId: string | null;
  /** oauth_token_exchange: per-user RFC 8693 exchange of the caller's token at the agent; oauth_user_brokered: each user's token from the control plane (docs/upstreams.md). */
  kind: "api_key" | "bearer" | "basic" | "oauth_client_credentials" | "oauth_token_exchange" | "oauth_user_brokered";
  placement: { in: "header" | "query"; name: string };
  /** The current version: an agent holding another refetches before the next call. */
  version: number;
  /** The upstream origin the secret was stored or confirmed for: an agent never injects it into a call to another origin. Absent only in bundles from before origin binding. */
  origin?: string;
  /** Set while the server's upstream origin differs from `origin`: the agent fails closed ("upstream credential unavailable") until a vault writer re-enters or confirms the secret. */
  suspended?: { from: string; to: string };
}

export interface BundleMaskingRule {
  serverId: string;
  /** A tool name or "*". */
  tool: string;
  /** Argument paths: dot-separated keys, `*` for every key or array item (e.g. "card.number", "items.*.ssn"). */
  paths: string[];
  mode: "hide" | "hash";
}

/** A bundle as served to agents. */
export interface SignedBundle {
  revision: number;
  sha256: string;
  keyId: string;
  signature: string;
  content: BundleContent;
}

/** SHA-256 (hex) of the RFC 8785 canonical JSON of the content: the bundle's address. */
export function contentHash(content: unknown): string {
  return createHash("sha256")
    .update(canonicalize(content) ?? "")
    .digest("hex");
}

export interface SignaturePayload {
  sha256: string;
  fleetId: string;
  revision: number;
}

export class BundleRejected extends Error {
  constructor(
    readonly reason: "hash_mismatch" | "bad_signature" | "unknown_key" | "missing_signature" | "wrong_fleet" | "stale_revision" | "malformed",
    message: string,
  ) {
    super(message);
    this.name = "BundleRejected";
  }
}

/**
 * Verifies a bundle against pinned public keys: the JWS is EdDSA by a pinned
 * key, its payload names this content's SHA-256, fleet and revision, and the
 * revision is not older than the one held. Throws BundleRejected otherwise.
 */
export async function verifyBundle(bundle: SignedBundle, opts: { keys: Record<string, JWK>; fleetId?: string; minRevision?: number }): Promise<BundleContent> {
  if (!bundle || typeof bundle !== "object" || !bundle.content || typeof bundle.content !== "object") throw new BundleRejected("malformed", "not a bundle");
  if (!bundle.signature) throw new BundleRejected("missing_signature", "the bundle is not signed");
  const hash = contentHash(bundle.content);
  if (hash !== bundle.sha256) throw new BundleRejected("hash_mismatch", "the content does not match its SHA-256");
  let payload: SignaturePayload;
  try {
    const { payload: raw } = await compactVerify(
      bundle.signature,
      async (header) => {
        const jwk = header.kid ? opts.keys[header.kid] : undefined;
        if (!jwk) throw new BundleRejected("unknown_key", `no pinned key ${header.kid ?? "(none)"}`);
        return importJWK(jwk, "EdDSA");
      },
      { algorithms: ["EdDSA"] },
    );
    payload = JSON.parse(new TextDecoder().decode(raw)) as SignaturePayload;
  } catch (err) {
    if (err instanceof BundleRejected) throw err;
    throw new BundleRejected("bad_signature", "the signature does not verify");
  }
  const m = bundle.content.manifest;
  if (payload.sha256 !== hash || payload.fleetId !== m.fleetId || payload.revision !== m.revision || bundle.revision !== m.revision) {
    throw new BundleRejected("hash_mismatch", "the signature is for other content");
  }
  if (opts.fleetId && m.fleetId !== opts.fleetId) throw new BundleRejected("wrong_fleet", `the bundle is for fleet ${m.fleetId}`);
  if (opts.minRevision !== undefined && m.revision < opts.minRevision) {
    throw new BundleRejected("stale_revision", `revision ${m.revision} is older than ${opts.minRevision}`);
  }
  return bundle.content;
}
