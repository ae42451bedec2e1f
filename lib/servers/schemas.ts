import { z } from "zod";
import { canonicalResourceUri, checkHttpUrl } from "@/lib/enforcement/resource-uri";

/** Asymmetric algorithms only: never `none`, never HMAC (a public key must not become a shared secret). */
export const allowedAlgorithms = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"] as const;

const refineUri = (check: typeof canonicalResourceUri) =>
  z
    .string()
    .max(2048)
    .transform((v, ctx) => {
      const r = check(v);
      if (!r.ok) {
        ctx.addIssue({ code: "custom", message: r.error });
        return z.NEVER;
      }
      return r.uri;
    });

export const resourceUriSchema = refineUri(canonicalResourceUri).describe("Canonical resource URI (RFC 8707): absolute https URI without fragment or query; normalized");
export const upstreamUrlSchema = refineUri((v) => checkHttpUrl(v)).describe("Streamable HTTP endpoint of the upstream MCP server");
// An issuer identifier is compared with the token's `iss` as an exact string
// (RFC 8414 §2, RFC 9068): validated, but kept exactly as the admin wrote it,
// never re-serialized (new URL() would add a trailing slash to an origin).
export const issuerUrlSchema = refineUri((v) => {
  const r = checkHttpUrl(v, { httpsOnly: true });
  return r.ok ? { ok: true, uri: v.trim() } : r;
});

// RFC 6749 §3.3 scope-token characters.
export const scopeSchema = z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]{1,128}$/, "must be a scope token (no spaces or quotes)");

const claimName = z.string().trim().min(1).max(128);

export const trustedIssuerSchema = z
  .object({
    issuer: issuerUrlSchema.describe("Issuer identifier (iss)"),
    jwksUri: issuerUrlSchema.optional().describe("JWKS URI; omit to use discovery"),
    revocationEndpoint: issuerUrlSchema.optional().describe("RFC 7009 revocation endpoint (https, or http on loopback): agents report tokens they refuse as revoked"),
    discovery: z.boolean().default(true).describe("Find the JWKS through the issuer's metadata"),
    algorithms: z.array(z.enum(allowedAlgorithms)).min(1, "choose at least one algorithm").default(["RS256", "ES256"]),
    claims: z
      .object({
        tenant: claimName.default("tenant"),
        user: claimName.default("sub"),
        client: claimName.default("client_id"),
        scopes: claimName.default("scope"),
      })
      .prefault({}),
  })
  .refine((i) => i.discovery || i.jwksUri, { message: "give a JWKS URI or enable discovery", path: ["jwksUri"] });

const nameSchema = z.string().trim().min(2, "must be at least 2 characters").max(80, "must be at most 80 characters");

const uniqueList = <T extends z.ZodType<string>>(item: T, max: number, what: string) =>
  z
    .array(item)
    .max(max, `at most ${max} ${what}`)
    .refine((a) => new Set(a).size === a.length, `${what} must not repeat`);

// The editable fields, without defaults: an update must leave out what it does not change.
const serverFields = {
  name: nameSchema,
  description: z.string().trim().max(2000),
  resourceUri: resourceUriSchema,
  upstreamUrl: upstreamUrlSchema,
  scopes: uniqueList(scopeSchema, 200, "scopes"),
  issuers: z.array(trustedIssuerSchema).max(10, "at most 10 issuers"),
  tenantIds: uniqueList(z.string(), 500, "tenants").describe("Other tenants allowed to use this server"),
  dpop: z
    .enum(["off", "allowed", "required"])
    .describe(
      'Sender-constrained tokens (DPoP, RFC 9449) at the agent: "off", "allowed" (DPoP-bound tokens must come with a valid proof, bearer tokens still pass) or "required" (only DPoP-bound tokens)',
    ),
  dpopNonce: z
    .boolean()
    .describe(
      "With dpop allowed or required: DPoP proofs must carry a nonce the agent issued (RFC 9449 section 9; the agent answers 401 use_dpop_nonce with a DPoP-Nonce header), which bounds how long a proof can be used",
    ),
  upstreamLogging: z
    .boolean()
    .describe("Whether logging/setLevel and the upstream's notifications/message pass the agent. Off by default: an upstream's log can carry the credential the agent injects and other callers' data"),
};

export const createServerInput = z.object({
  tenantId: z.string().describe("Owning tenant: its admins manage the server"),
  ...serverFields,
  description: serverFields.description.default(""),
  scopes: serverFields.scopes.default([]),
  issuers: serverFields.issuers.default([]),
  tenantIds: serverFields.tenantIds.default([]).describe("Other tenants allowed to use this server"),
  dpop: serverFields.dpop.default("off"),
  dpopNonce: serverFields.dpopNonce.default(false),
  upstreamLogging: serverFields.upstreamLogging.default(false),
});

// Not derived from createServerInput: zod 4 applies `.default()` even under
// `.partial()`, so a PATCH of one field would reset scopes, issuers and sharing.
export const updateServerInput = z
  .object(serverFields)
  .partial()
  .refine((v) => Object.keys(v).length > 0, "nothing to change");

export type CreateServerInput = z.infer<typeof createServerInput>;
export type UpdateServerInput = z.infer<typeof updateServerInput>;
