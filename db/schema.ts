import { relations, sql } from "drizzle-orm";
import { bigint, boolean, date, index, integer, jsonb, pgTable, primaryKey, text, timestamp, unique, uniqueIndex } from "drizzle-orm/pg-core";

const createdAt = () => timestamp("created_at", { withTimezone: true }).notNull().defaultNow();
const updatedAt = () => timestamp("updated_at", { withTimezone: true }).notNull().defaultNow();

export const globalRoles = ["owner", "auditor", "member"] as const;
export const tenantRoles = ["admin", "auditor"] as const;
export const tokenRoles = ["owner", "admin", "auditor"] as const;
export const riskLevels = ["unrated", "low", "medium", "high", "critical"] as const;

export type GlobalRole = (typeof globalRoles)[number];
export type TenantRole = (typeof tenantRoles)[number];
export type TokenRole = (typeof tokenRoles)[number];
export type RiskLevel = (typeof riskLevels)[number];

/** Shape of one trusted authorization server of an MCP server. */
export interface TrustedIssuer {
  issuer: string;
  jwksUri?: string;
  discovery: boolean;
  algorithms: string[];
  claims: { tenant: string; user: string; client: string; scopes: string };
  /** RFC 7009 endpoint: agents send a token they refuse as revoked there (best effort). */
  revocationEndpoint?: string;
}

// ---------------------------------------------------------------- identity

export const users = pgTable(
  "users",
  {
    id: text("id").primaryKey(),
    email: text("email").notNull(),
    name: text("name").notNull().default(""),
    passwordHash: text("password_hash"),
    mustChangePassword: boolean("must_change_password").notNull().default(false),
    role: text("role", { enum: globalRoles }).notNull().default("member"),
    disabled: boolean("disabled").notNull().default(false),
    // An SSO identity is the pair (issuer, subject): a subject alone is only unique within its issuer.
    oidcIssuer: text("oidc_issuer"),
    oidcSubject: text("oidc_subject"),
    // Bumped on password change or disable: sessions carrying an older value stop working.
    sessionVersion: integer("session_version").notNull().default(1),
    createdAt: createdAt(),
    lastLoginAt: timestamp("last_login_at", { withTimezone: true }),
  },
  (t) => [uniqueIndex("users_email_key").on(t.email), uniqueIndex("users_oidc_identity_key").on(t.oidcIssuer, t.oidcSubject)],
);

/**
 * An invitation to choose a password (or sign in with SSO): the only way a
 * new account gets a credential, so whoever adds a user never learns one.
 * Single use, expiring; the database keeps the SHA-256 of its secret.
 */
export const invitations = pgTable(
  "invitations",
  {
    id: text("id").primaryKey(),
    userId: text("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    secretHash: text("secret_hash").notNull(),
    createdBy: text("created_by").references(() => users.id, { onDelete: "set null" }),
    createdAt: createdAt(),
    expiresAt: timestamp("expires_at", { withTimezone: true }).notNull(),
    usedAt: timestamp("used_at", { withTimezone: true }),
    // Set when the invitation stops counting without being used: a newer one, an SSO link, a disable.
    revokedAt: timestamp("revoked_at", { withTimezone: true }),
  },
  (t) => [index("invitations_user_idx").on(t.userId)],
);

/**
 * Sign-in attempt counters, one row per key (`acct:<sha256 of e-mail>` or
 * `addr:<client address>`) and fixed window, shared by every control-plane replica.
 */
export const signInCounters = pgTable(
  "sign_in_counters",
  {
    key: text("key").primaryKey(),
    windowStartedAt: timestamp("window_started_at", { withTimezone: true }).notNull().defaultNow(),
    attempts: integer("attempts").notNull().default(0),
  },
  (t) => [index("sign_in_counters_window_idx").on(t.windowStartedAt)],
);

export const tenants = pgTable(
  "tenants",
  {
    id: text("id").primaryKey(),
    name: text("name").notNull(),
    slug: text("slug").notNull(),
    status: text("status", { enum: ["active", "disabled"] })
      .notNull()
      .default("active"),
    // When set, calls from OAuth clients an admin has not approved are denied (issue 5).
    requireClientApproval: boolean("require_client_approval").notNull().default(false),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [uniqueIndex("tenants_slug_key").on(t.slug)],
);

export const memberships = pgTable(
  "memberships",
  {
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id, { onDelete: "cascade" }),
    userId: text("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    role: text("role", { enum: tenantRoles }).notNull(),
    createdAt: createdAt(),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.userId] }), index("memberships_user_idx").on(t.userId)],
);

export const apiTokens = pgTable(
  "api_tokens",
  {
    id: text("id").primaryKey(),
    name: text("name").notNull(),
    // SHA-256 of the secret part, hex. The secret itself is shown once and never stored.
    secretHash: text("secret_hash").notNull(),
    lastFour: text("last_four").notNull(),
    role: text("role", { enum: tokenRoles }).notNull(),
    tenantId: text("tenant_id").references(() => tenants.id, { onDelete: "cascade" }),
    createdBy: text("created_by")
      .notNull()
      .references(() => users.id),
    createdAt: createdAt(),
    expiresAt: timestamp("expires_at", { withTimezone: true }),
    lastUsedAt: timestamp("last_used_at", { withTimezone: true }),
    revokedAt: timestamp("revoked_at", { withTimezone: true }),
  },
  (t) => [index("api_tokens_tenant_idx").on(t.tenantId)],
);

// ---------------------------------------------------------------- registry

export const servers = pgTable(
  "servers",
  {
    id: text("id").primaryKey(),
    // The owning tenant: its admins manage the server. Other tenants may be granted use.
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id),
    name: text("name").notNull(),
    description: text("description").notNull().default(""),
    resourceUri: text("resource_uri").notNull(),
    upstreamUrl: text("upstream_url").notNull(),
    scopes: jsonb("scopes")
      .$type<string[]>()
      .notNull()
      .default(sql`'[]'::jsonb`),
    issuers: jsonb("issuers")
      .$type<TrustedIssuer[]>()
      .notNull()
      .default(sql`'[]'::jsonb`),
    // Sender-constrained tokens (RFC 9449) at the agent: "off" | "allowed" | "required" (lib/enforcement/dpop.ts).
    dpop: text("dpop").$type<"off" | "allowed" | "required">().notNull().default("off"),
    // Upstream logging through the agent (logging/setLevel and notifications/message): off by default,
    // since an upstream's log can carry the credential the agent injects and other callers' data.
    upstreamLogging: boolean("upstream_logging").notNull().default(false),
    // RFC 9449 section 9: the agent answers use_dpop_nonce with a DPoP-Nonce it signed (stateless, per time window); only with dpop allowed or required.
    dpopNonce: boolean("dpop_nonce").notNull().default(false),
    lastImportAt: timestamp("last_import_at", { withTimezone: true }),
    lastImportError: text("last_import_error"),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [uniqueIndex("servers_resource_uri_key").on(t.resourceUri), uniqueIndex("servers_tenant_name_key").on(t.tenantId, t.name)],
);

export const serverTenants = pgTable(
  "server_tenants",
  {
    serverId: text("server_id")
      .notNull()
      .references(() => servers.id, { onDelete: "cascade" }),
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id, { onDelete: "cascade" }),
  },
  (t) => [primaryKey({ columns: [t.serverId, t.tenantId] }), index("server_tenants_tenant_idx").on(t.tenantId)],
);

/** How a token of a tenant's trusted issuer maps to that tenant. */
export type TenantMapping = { mode: "claim"; claim: string; values: string[] } | { mode: "issuer" };

/**
 * Trust is granted by a tenant (issue 10): a token may act for a tenant only
 * through an issuer this tenant trusts, verified with the key source this
 * tenant configured, and mapped to it by this tenant's own rule. No server
 * setting and no other tenant's admin can change it.
 */
export const tenantIssuers = pgTable(
  "tenant_issuers",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id, { onDelete: "cascade" }),
    issuer: text("issuer").notNull(),
    jwksUri: text("jwks_uri"),
    discovery: boolean("discovery").notNull().default(true),
    algorithms: jsonb("algorithms").$type<string[]>().notNull(),
    claims: jsonb("claims").$type<{ user: string; client: string; scopes: string; groups: string }>().notNull(),
    tenantMapping: jsonb("tenant_mapping").$type<TenantMapping>().notNull(),
    // RFC 9068: when "at+jwt", tokens whose JOSE typ is not at+jwt are refused.
    requireTyp: text("require_typ", { enum: ["at+jwt"] }),
    revocationEndpoint: text("revocation_endpoint"),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [uniqueIndex("tenant_issuers_tenant_issuer_key").on(t.tenantId, t.issuer), index("tenant_issuers_issuer_idx").on(t.issuer)],
);

/** What a catalogue row is (lib/enforcement/catalogue-entry.ts); `tools.name` is its key: tool or prompt name, resource URI, URI template. */
export const catalogueKinds = ["tool", "resource", "resourceTemplate", "prompt"] as const;

export const tools = pgTable(
  "tools",
  {
    id: text("id").primaryKey(),
    serverId: text("server_id")
      .notNull()
      .references(() => servers.id, { onDelete: "cascade" }),
    kind: text("kind", { enum: catalogueKinds }).notNull().default("tool"),
    name: text("name").notNull(),
    risk: text("risk", { enum: riskLevels }).notNull().default("unrated"),
    blocked: boolean("blocked").notNull().default(false),
    blockedReason: text("blocked_reason"),
    // Only the approved version counts as the catalogue; the latest may be newer and pending review.
    approvedVersionId: text("approved_version_id"),
    latestVersionId: text("latest_version_id").notNull(),
    removedUpstream: boolean("removed_upstream").notNull().default(false),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [uniqueIndex("tools_server_kind_name_key").on(t.serverId, t.kind, t.name)],
);

export const toolVersions = pgTable(
  "tool_versions",
  {
    id: text("id").primaryKey(),
    toolId: text("tool_id")
      .notNull()
      .references(() => tools.id, { onDelete: "cascade" }),
    version: integer("version").notNull(),
    title: text("title"),
    description: text("description").notNull().default(""),
    inputSchema: jsonb("input_schema").$type<Record<string, unknown>>().notNull(),
    outputSchema: jsonb("output_schema").$type<Record<string, unknown>>(),
    annotations: jsonb("annotations")
      .$type<Record<string, unknown>>()
      .notNull()
      .default(sql`'{}'::jsonb`),
    // Resources, templates and prompts: the definition as listed (uri or uriTemplate, name, mimeType, arguments), which `hash` covers.
    definition: jsonb("definition").$type<Record<string, unknown>>(),
    hash: text("hash").notNull(),
    source: text("source", { enum: ["import", "manual"] }).notNull(),
    createdBy: text("created_by").notNull(),
    createdAt: createdAt(),
    approvedBy: text("approved_by"),
    approvedAt: timestamp("approved_at", { withTimezone: true }),
  },
  (t) => [uniqueIndex("tool_versions_tool_version_key").on(t.toolId, t.version)],
);

/** Each save of a server's scope × tool matrix is a new immutable version. */
export const scopeMappings = pgTable(
  "scope_mappings",
  {
    id: text("id").primaryKey(),
    serverId: text("server_id")
      .notNull()
      .references(() => servers.id, { onDelete: "cascade" }),
    version: integer("version").notNull(),
    mapping: jsonb("mapping").$type<Record<string, string[]>>().notNull(),
    createdBy: text("created_by").notNull(),
    createdAt: createdAt(),
  },
  (t) => [uniqueIndex("scope_mappings_server_version_key").on(t.serverId, t.version)],
);

// ---------------------------------------------------------------- admin trail

export const auditEvents = pgTable(
  "audit_events",
  {
    id: text("id").primaryKey(),
    at: timestamp("at", { withTimezone: true }).notNull().defaultNow(),
    actorType: text("actor_type", { enum: ["user", "token", "system", "agent"] }).notNull(),
    actorId: text("actor_id").notNull(),
    actorLabel: text("actor_label").notNull(),
    action: text("action").notNull(),
    targetType: text("target_type").notNull(),
    targetId: text("target_id").notNull(),
    tenantId: text("tenant_id"),
    before: jsonb("before").$type<unknown>(),
    after: jsonb("after").$type<unknown>(),
  },
  (t) => [index("audit_events_at_idx").on(t.at.desc(), t.id.desc()), index("audit_events_tenant_at_idx").on(t.tenantId, t.at.desc()), index("audit_events_target_idx").on(t.targetType, t.targetId)],
);

// ---------------------------------------------------------------- policies

/** A rule from the rule editor: compiled to one Cedar permit or forbid. */
export interface PolicyRule {
  effect: "permit" | "forbid";
  /** Actions of the target's kind (lib/enforcement/model.ts ACTION_TARGETS). */
  actions: ("call_tool" | "list_tools" | "read_resource" | "list_resources" | "list_resource_templates" | "get_prompt" | "list_prompts" | "complete")[];
  /** What the rule is about: tools (absent), resources (by URI), resource templates (by URI template) or prompts. */
  target?: "resource" | "resourceTemplate" | "prompt";
  /** Names of the target kind (tool or prompt names, URIs, URI templates), or empty with `toolFilter` to match by annotation or risk. */
  tools: string[];
  toolFilter?: { risk?: RiskLevel[]; readOnly?: boolean; destructive?: boolean };
  principals: { users: string[]; groups: string[] };
  clients: string[];
  conditions: {
    arg: string;
    op: "eq" | "neq" | "in" | "like" | "lt" | "lte" | "gt" | "gte" | "present" | "absent";
    value?: string | number | boolean | (string | number)[];
  }[];
  time?: { fromHour: number; toHour: number; days?: number[] };
  /** For a forbid: ask a member of this approver group instead of denying (compiled to `@approval("<group>")`). */
  approval?: string;
}

export const policies = pgTable(
  "policies",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id, { onDelete: "cascade" }),
    serverId: text("server_id")
      .notNull()
      .references(() => servers.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    description: text("description").notNull().default(""),
    kind: text("kind", { enum: ["rule", "cedar"] }).notNull(),
    rule: jsonb("rule").$type<PolicyRule>(),
    // The Cedar as written (kind cedar) or as compiled from the rule (kind rule).
    cedar: text("cedar").notNull(),
    enabled: boolean("enabled").notNull().default(true),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [uniqueIndex("policies_tenant_server_name_key").on(t.tenantId, t.serverId, t.name), index("policies_server_idx").on(t.serverId)],
);

/** A request and the decision it must get; run on demand and before every publish. */
export interface PolicyTestRequest {
  user: string;
  groups: string[];
  client: string;
  scopes: string[];
  tool: string;
  action: "call_tool" | "list_tools";
  args: Record<string, unknown>;
  time?: string;
}

export const policyTests = pgTable(
  "policy_tests",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id, { onDelete: "cascade" }),
    serverId: text("server_id")
      .notNull()
      .references(() => servers.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    request: jsonb("request").$type<PolicyTestRequest>().notNull(),
    expected: text("expected", { enum: ["allow", "deny"] }).notNull(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [uniqueIndex("policy_tests_tenant_server_name_key").on(t.tenantId, t.serverId, t.name)],
);

// ---------------------------------------------------------------- fleets, agents, bundles

export const fleets = pgTable(
  "fleets",
  {
    id: text("id").primaryKey(),
    name: text("name").notNull(),
    description: text("description").notNull().default(""),
    activeRevision: integer("active_revision"),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [uniqueIndex("fleets_name_key").on(t.name)],
);

export const fleetServers = pgTable(
  "fleet_servers",
  {
    fleetId: text("fleet_id")
      .notNull()
      .references(() => fleets.id, { onDelete: "cascade" }),
    serverId: text("server_id")
      .notNull()
      .references(() => servers.id, { onDelete: "cascade" }),
  },
  (t) => [primaryKey({ columns: [t.fleetId, t.serverId] }), index("fleet_servers_server_idx").on(t.serverId)],
);

export const enrollmentTokens = pgTable("enrollment_tokens", {
  id: text("id").primaryKey(),
  fleetId: text("fleet_id")
    .notNull()
    .references(() => fleets.id, { onDelete: "cascade" }),
  secretHash: text("secret_hash").notNull(),
  createdBy: text("created_by").notNull(),
  createdAt: createdAt(),
  expiresAt: timestamp("expires_at", { withTimezone: true }).notNull(),
  usedAt: timestamp("used_at", { withTimezone: true }),
  usedByAgentId: text("used_by_agent_id"),
});

export const agents = pgTable(
  "agents",
  {
    id: text("id").primaryKey(),
    fleetId: text("fleet_id")
      .notNull()
      .references(() => fleets.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    keyHash: text("key_hash").notNull(),
    keyRotatedAt: timestamp("key_rotated_at", { withTimezone: true }),
    createdAt: createdAt(),
    lastSeenAt: timestamp("last_seen_at", { withTimezone: true }),
    version: text("version"),
    bundleRevision: integer("bundle_revision"),
    lastError: text("last_error"),
    counters: jsonb("counters").$type<Record<string, number>>(),
    // Vault entry id -> the credential version the agent last reported holding (heartbeat); null: the agent does not report it (older agents).
    credentialVersions: jsonb("credential_versions").$type<Record<string, number>>(),
    revokedAt: timestamp("revoked_at", { withTimezone: true }),
  },
  (t) => [index("agents_fleet_idx").on(t.fleetId)],
);

export const bundles = pgTable(
  "bundles",
  {
    id: text("id").primaryKey(),
    fleetId: text("fleet_id")
      .notNull()
      .references(() => fleets.id, { onDelete: "cascade" }),
    revision: integer("revision").notNull(),
    parentRevision: integer("parent_revision"),
    // SHA-256 of the canonical JSON of `content`; the bundle's address.
    sha256: text("sha256").notNull(),
    content: jsonb("content").$type<Record<string, unknown>>().notNull(),
    // Compact JWS (EdDSA) over { sha256, fleet, revision }.
    signature: text("signature").notNull(),
    keyId: text("key_id").notNull(),
    note: text("note").notNull().default(""),
    rolledBackFrom: integer("rolled_back_from"),
    createdBy: text("created_by").notNull(),
    createdAt: createdAt(),
  },
  (t) => [uniqueIndex("bundles_fleet_revision_key").on(t.fleetId, t.revision)],
);

/** Ed25519 signing keys. The private key is sealed with the key-encryption key, never stored in clear. */
export const signingKeys = pgTable("signing_keys", {
  kid: text("kid").primaryKey(),
  publicJwk: jsonb("public_jwk").$type<Record<string, string>>().notNull(),
  sealedPrivateKey: text("sealed_private_key").notNull(),
  kekId: text("kek_id").notNull(),
  status: text("status", { enum: ["active", "retired"] })
    .notNull()
    .default("active"),
  createdAt: createdAt(),
  retiredAt: timestamp("retired_at", { withTimezone: true }),
});

// ---------------------------------------------------------------- upstream credential vault

export const credentialKinds = ["api_key", "bearer", "basic", "oauth_client_credentials", "oauth_token_exchange", "oauth_user_brokered"] as const;
export type CredentialKind = (typeof credentialKinds)[number];

/** Where the agent puts the credential on the upstream request. */
export interface CredentialPlacement {
  /** "header": a header (api_key: the key as is; bearer/oauth: "Bearer <token>"; basic: "Basic <b64>"); "query": a URL parameter (api_key only). */
  in: "header" | "query";
  name: string;
}

/** OAuth client credentials (RFC 6749 §4.4): the agent exchanges them for an upstream access token itself. */
export interface OAuthClientConfig {
  tokenUrl: string;
  clientId: string;
  scope?: string;
  audience?: string;
  authMethod: "client_secret_basic" | "client_secret_post";
  /** oauth_user_brokered: the upstream AS authorization endpoint (the control plane runs the code flow with PKCE). */
  authorizationUrl?: string;
  /** oauth_user_brokered: the upstream AS issuer, checked against the RFC 9207 iss parameter of the authorization response. */
  issuer?: string;
}

/**
 * One upstream credential of a server, for one tenant or (tenantId null) for
 * every tenant of the server. Secrets live in vault_versions, sealed.
 */
export const vaultEntries = pgTable(
  "vault_entries",
  {
    id: text("id").primaryKey(),
    serverId: text("server_id")
      .notNull()
      .references(() => servers.id, { onDelete: "cascade" }),
    tenantId: text("tenant_id").references(() => tenants.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    kind: text("kind", { enum: credentialKinds }).notNull(),
    placement: jsonb("placement").$type<CredentialPlacement>().notNull(),
    oauth: jsonb("oauth").$type<OAuthClientConfig>(),
    notes: text("notes").notNull().default(""),
    owner: text("owner").notNull().default(""),
    status: text("status", { enum: ["active", "retired"] })
      .notNull()
      .default("active"),
    currentVersion: integer("current_version").notNull().default(1),
    rotationIntervalDays: integer("rotation_interval_days"),
    nextRotationAt: timestamp("next_rotation_at", { withTimezone: true }),
    // The upstream origin (scheme://host:port) the secret was stored or last confirmed for. While the
    // server's upstream has another origin the entry is suspended: not brokered, marked in the bundle.
    boundOrigin: text("bound_origin").notNull().default(""),
    createdBy: text("created_by").notNull(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [uniqueIndex("vault_entries_server_tenant_key").on(t.serverId, sql`coalesce(${t.tenantId}, '')`), index("vault_entries_tenant_idx").on(t.tenantId)],
);

/**
 * One secret version, envelope-encrypted: the secret sealed with its own data
 * key (AES-256-GCM, AAD = entry and version), the data key sealed with the
 * key-encryption key `kekId`, which never enters the database.
 */
export const vaultVersions = pgTable(
  "vault_versions",
  {
    id: text("id").primaryKey(),
    entryId: text("entry_id")
      .notNull()
      .references(() => vaultEntries.id, { onDelete: "cascade" }),
    version: integer("version").notNull(),
    status: text("status", { enum: ["scheduled", "current", "grace", "retired"] }).notNull(),
    ciphertext: text("ciphertext").notNull(),
    wrappedKey: text("wrapped_key").notNull(),
    kekId: text("kek_id").notNull(),
    // A keyed hash prefix and the last characters: enough to recognise a secret, never to recover it.
    fingerprint: text("fingerprint").notNull(),
    lastChars: text("last_chars").notNull(),
    // The upstream origin this version was stored or confirmed for: making an older version current again is refused when it differs from the upstream's origin (null: stored before versions recorded it).
    boundOrigin: text("bound_origin"),
    activatesAt: timestamp("activates_at", { withTimezone: true }),
    graceUntil: timestamp("grace_until", { withTimezone: true }),
    retiredAt: timestamp("retired_at", { withTimezone: true }),
    createdBy: text("created_by").notNull(),
    createdAt: createdAt(),
  },
  (t) => [uniqueIndex("vault_versions_entry_version_key").on(t.entryId, t.version), index("vault_versions_status_idx").on(t.status)],
);

// ---------------------------------------------------------------- OAuth clients, delegated grants, revocations

/** An OAuth client seen acting in a tenant (learned from accepted tokens, or added by an admin). */
export const oauthClients = pgTable(
  "oauth_clients",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id, { onDelete: "cascade" }),
    clientId: text("client_id").notNull(),
    name: text("name").notNull().default(""),
    redirectUris: jsonb("redirect_uris")
      .$type<string[]>()
      .notNull()
      .default(sql`'[]'::jsonb`),
    // "metadata_document": the client id is an HTTPS URL naming its metadata (MCP client ID metadata documents).
    registration: text("registration", { enum: ["dynamic", "metadata_document", "static", "unknown"] })
      .notNull()
      .default("unknown"),
    status: text("status", { enum: ["pending", "approved", "blocked"] })
      .notNull()
      .default("pending"),
    decidedBy: text("decided_by"),
    decidedAt: timestamp("decided_at", { withTimezone: true }),
    firstSeenAt: timestamp("first_seen_at", { withTimezone: true }),
    lastSeenAt: timestamp("last_seen_at", { withTimezone: true }),
    createdAt: createdAt(),
  },
  (t) => [uniqueIndex("oauth_clients_tenant_client_key").on(t.tenantId, t.clientId)],
);

/** User U lets client C act on server S for tenant T with scopes X: learned from decisions or imported. */
export const grants = pgTable(
  "grants",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id, { onDelete: "cascade" }),
    serverId: text("server_id")
      .notNull()
      .references(() => servers.id, { onDelete: "cascade" }),
    userId: text("user_id").notNull(),
    clientId: text("client_id").notNull(),
    scopes: jsonb("scopes")
      .$type<string[]>()
      .notNull()
      .default(sql`'[]'::jsonb`),
    source: text("source", { enum: ["learned", "imported"] })
      .notNull()
      .default("learned"),
    firstSeenAt: timestamp("first_seen_at", { withTimezone: true }),
    lastSeenAt: timestamp("last_seen_at", { withTimezone: true }),
    calls: integer("calls").notNull().default(0),
    revokedAt: timestamp("revoked_at", { withTimezone: true }),
    revokedBy: text("revoked_by"),
    createdAt: createdAt(),
  },
  (t) => [
    uniqueIndex("grants_key").on(t.tenantId, t.serverId, t.userId, t.clientId),
    index("grants_tenant_last_seen_idx").on(t.tenantId, t.lastSeenAt.desc()),
    index("grants_client_idx").on(t.tenantId, t.clientId),
  ],
);

/** "Reject tokens of (user, client, server) in this tenant issued before `before`": published in every bundle. */
export const revocations = pgTable(
  "revocations",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id, { onDelete: "cascade" }),
    serverId: text("server_id").references(() => servers.id, { onDelete: "cascade" }),
    userId: text("user_id"),
    clientId: text("client_id"),
    grantId: text("grant_id"),
    before: timestamp("before", { withTimezone: true, precision: 3 }).notNull(),
    reason: text("reason").notNull().default(""),
    // Outcome of the authorization server's RFC 7009 revocation call, when one is configured.
    upstreamRevocation: jsonb("upstream_revocation").$type<{ status: "not_configured" | "sent" | "failed"; detail?: string }>(),
    createdBy: text("created_by").notNull(),
    createdAt: createdAt(),
  },
  (t) => [index("revocations_tenant_idx").on(t.tenantId, t.createdAt.desc())],
);

// ---------------------------------------------------------------- decision masking

/** Argument paths an agent hides or hashes before a decision leaves it (published live in every bundle). */
export const maskingRules = pgTable(
  "masking_rules",
  {
    id: text("id").primaryKey(),
    serverId: text("server_id")
      .notNull()
      .references(() => servers.id, { onDelete: "cascade" }),
    // A tool name, or "*" for every tool of the server.
    tool: text("tool").notNull(),
    paths: jsonb("paths").$type<string[]>().notNull(),
    mode: text("mode", { enum: ["hide", "hash"] }).notNull(),
    createdBy: text("created_by").notNull(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [index("masking_rules_server_idx").on(t.serverId)],
);

/** Singleton settings row (id = 1): decision retention and the like. */
export const settings = pgTable("settings", {
  id: integer("id").primaryKey(),
  decisionRetentionDays: integer("decision_retention_days").notNull().default(90),
  updatedAt: updatedAt(),
});

// ---------------------------------------------------------------- decision log

/** The parts of a decision's context worth keeping: enough to replay it or open it in the simulator. */
export interface DecisionContextRecord {
  groups?: string[];
  actors?: string[];
  token?: { iss: string; iat: number; exp: number };
  ip?: string;
  /** Argument paths the agent masked (hidden or hashed) before sending. */
  masked?: string[];
  /** The OpenTelemetry trace id of the call, when the agent traced it (agent/tracing.ts). */
  traceId?: string;
  /** Identical refusals this record stands for (the agent gate counts repeats per window; absent: one). */
  repeated?: number;
}

/**
 * Every decision an agent made. Partitioned by day on `at` (declarative range
 * partitioning, see the migration); `at` is the time inside the UUIDv7 id, so
 * the (id, at) key makes the id alone unique and ingestion idempotent.
 */
export const decisions = pgTable(
  "decisions",
  {
    id: text("id").notNull(),
    at: timestamp("at", { withTimezone: true, precision: 3 }).notNull(),
    agentId: text("agent_id").notNull(),
    fleetId: text("fleet_id").notNull(),
    bundleRevision: integer("bundle_revision"),
    tenantId: text("tenant_id"),
    serverId: text("server_id").notNull(),
    method: text("method").notNull(),
    tool: text("tool"),
    userId: text("user_id"),
    clientId: text("client_id"),
    scopes: jsonb("scopes")
      .$type<string[]>()
      .notNull()
      .default(sql`'[]'::jsonb`),
    outcome: text("outcome", { enum: ["allow", "deny", "error"] }).notNull(),
    reason: text("reason").notNull().default(""),
    determining: jsonb("determining")
      .$type<string[]>()
      .notNull()
      .default(sql`'[]'::jsonb`),
    args: jsonb("args").$type<Record<string, unknown>>(),
    // What the decision saw besides the call: groups, delegation actors, token iss/iat/exp, network.
    context: jsonb("context").$type<DecisionContextRecord>(),
    latencyUs: integer("latency_us"),
    receivedAt: timestamp("received_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.id, t.at] }),
    index("decisions_tenant_at_idx").on(t.tenantId, t.at.desc()),
    index("decisions_server_tool_at_idx").on(t.serverId, t.tool, t.at.desc()),
    // Denials and errors only: the audit page filters on outcome to find them; allows (most rows) skip this index.
    index("decisions_refused_at_idx")
      .on(t.outcome, t.at.desc())
      .where(sql`outcome <> 'allow'`),
    index("decisions_user_at_idx").on(t.userId, t.at.desc()),
    index("decisions_client_at_idx").on(t.clientId, t.at.desc()),
    // Keyset pagination walks (at, id) descending.
    index("decisions_at_id_idx").on(t.at.desc(), t.id.desc()),
    index("decisions_fleet_revision_at_idx").on(t.fleetId, t.bundleRevision, t.at.desc()),
    // A tool filter without a server (the (server, tool, at) index needs the server).
    index("decisions_tool_at_idx").on(t.tool, t.at.desc()),
    // Not declared here (drizzle cannot express them; see migration 0008): the trigram index on args::text
    // (only when pg_trgm is installed) and the statement trigger that maintains the three rollup tables below.
  ],
);

/**
 * Decision lines an agent sent that ingest could not store (issue 10): set
 * aside with their problem, counted, never silently dropped and never
 * blocking the good lines of their batch. `raw` is the line's text cut to its
 * bound; (agent, sha256 of the whole line) makes a resent batch quarantine a
 * line once.
 */
export const decisionQuarantine = pgTable(
  "decision_quarantine",
  {
    id: text("id").primaryKey(),
    agentId: text("agent_id")
      .notNull()
      .references(() => agents.id, { onDelete: "cascade" }),
    fleetId: text("fleet_id")
      .notNull()
      .references(() => fleets.id, { onDelete: "cascade" }),
    receivedAt: timestamp("received_at", { withTimezone: true }).notNull().defaultNow(),
    // The line's id when it had a readable one.
    decisionId: text("decision_id"),
    problem: text("problem").notNull(),
    raw: text("raw").notNull(),
    rawBytes: integer("raw_bytes").notNull(),
    rawSha256: text("raw_sha256").notNull(),
  },
  (t) => [uniqueIndex("decision_quarantine_agent_raw_key").on(t.agentId, t.rawSha256), index("decision_quarantine_received_idx").on(t.receivedAt.desc())],
);

// ---------------------------------------------------------------- least privilege (issue 15)

/** The webhook URL of a findings digest, sealed like a vault secret (it often carries its own credential). */
export interface SealedWebhook {
  ciphertext: string;
  wrappedKey: string;
  kekId: string;
}

/**
 * Least-privilege settings of one tenant (id = tenant id), or of the owners'
 * fleet-wide findings (id "global", tenantId null): the unused window, the
 * "small share" threshold, and where the weekly digest goes.
 */
export const findingSettings = pgTable("finding_settings", {
  id: text("id").primaryKey(),
  tenantId: text("tenant_id").references(() => tenants.id, { onDelete: "cascade" }),
  unusedDays: integer("unused_days").notNull().default(30),
  smallSharePercent: integer("small_share_percent").notNull().default(25),
  webhook: jsonb("webhook").$type<SealedWebhook>(),
  // Scheme and host of the webhook: enough to recognise it, never the path or query that hold its secret.
  webhookHint: text("webhook_hint"),
  lastDigestAt: timestamp("last_digest_at", { withTimezone: true }),
  updatedAt: updatedAt(),
});

/** When each finding (by its stable key) was first and last computed: the digest lists those new since the last one. */
export const findingMarks = pgTable(
  "finding_marks",
  {
    key: text("key").primaryKey(),
    tenantId: text("tenant_id").references(() => tenants.id, { onDelete: "cascade" }),
    kind: text("kind").notNull(),
    firstSeenAt: timestamp("first_seen_at", { withTimezone: true }).notNull().defaultNow(),
    lastSeenAt: timestamp("last_seen_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index("finding_marks_tenant_first_idx").on(t.tenantId, t.firstSeenAt.desc())],
);

/** A tenant's privilege score, once a day: how much of its granted capability was used in the window. */
export const privilegeScores = pgTable(
  "privilege_scores",
  {
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id, { onDelete: "cascade" }),
    day: date("day", { mode: "string" }).notNull(),
    windowDays: integer("window_days").notNull(),
    granted: integer("granted").notNull(),
    used: integer("used").notNull(),
    detail: jsonb("detail").$type<{ pairs: { granted: number; used: number }; grants: { granted: number; used: number } }>().notNull(),
    computedAt: timestamp("computed_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.day] })],
);

/**
 * The findings job's stored result, one row per scope (id = tenant id, or "global" for the owners'
 * fleet-wide findings): the findings and score computed at `computedAt` with the window settings used.
 * Read instead of a live computation while fresh and computed with the current settings (lib/findings/store.ts).
 * `findings` is null when the result was larger than the store keeps: readers then compute live.
 */
export const findingResults = pgTable("finding_results", {
  scope: text("scope").primaryKey(),
  tenantId: text("tenant_id").references(() => tenants.id, { onDelete: "cascade" }),
  computedAt: timestamp("computed_at", { withTimezone: true }).notNull(),
  unusedDays: integer("unused_days").notNull(),
  smallSharePercent: integer("small_share_percent").notNull(),
  findings: jsonb("findings").$type<unknown[]>(),
  score: jsonb("score").$type<Record<string, unknown>>(),
  findingCount: integer("finding_count").notNull(),
  truncated: boolean("truncated").notNull().default(false),
  tookMs: integer("took_ms").notNull().default(0),
  // "job", or the user id whose Recompute stored it.
  computedBy: text("computed_by").notNull(),
});

// ---------------------------------------------------------------- decision rollups (issue 15)
// Maintained by the AFTER INSERT statement trigger on `decisions` (migration 0008) from the rows an INSERT
// actually stored: a duplicate (ON CONFLICT DO NOTHING) is not in the trigger's transition table, so it is
// never counted twice. Same transaction as the rows. Retention deletes rollups older than the kept partitions.
// A missing tenant, tool, user or client is stored as '' (keys are NOT NULL).
const rollupCounts = () => ({
  allow: bigint("allow", { mode: "number" }).notNull().default(0),
  deny: bigint("deny", { mode: "number" }).notNull().default(0),
  error: bigint("error", { mode: "number" }).notNull().default(0),
  lastAt: timestamp("last_at", { withTimezone: true, precision: 3 }).notNull(),
});

/** Decisions per hour and per day (UTC) × tenant × server × tool, counted by outcome: charts' series and top denied tools. */
export const decisionRollups = pgTable(
  "decision_rollups",
  {
    grain: text("grain", { enum: ["hour", "day"] }).notNull(),
    bucket: timestamp("bucket", { withTimezone: true }).notNull(),
    tenantId: text("tenant_id").notNull(),
    serverId: text("server_id").notNull(),
    tool: text("tool").notNull(),
    ...rollupCounts(),
  },
  (t) => [primaryKey({ columns: [t.grain, t.bucket, t.tenantId, t.serverId, t.tool] }), index("decision_rollups_tenant_idx").on(t.tenantId, t.grain, t.bucket)],
);

/** Decisions per hour and per day × tenant × user (kind 'user') or client (kind 'client'), by outcome: charts' top users and clients. */
export const decisionActorRollups = pgTable(
  "decision_actor_rollups",
  {
    grain: text("grain", { enum: ["hour", "day"] }).notNull(),
    bucket: timestamp("bucket", { withTimezone: true }).notNull(),
    tenantId: text("tenant_id").notNull(),
    kind: text("kind", { enum: ["user", "client"] }).notNull(),
    actor: text("actor").notNull(),
    ...rollupCounts(),
  },
  (t) => [
    primaryKey({ columns: [t.grain, t.bucket, t.tenantId, t.kind, t.actor] }),
    index("decision_actor_rollups_tenant_idx").on(t.tenantId, t.grain, t.bucket),
    // The day rows only, with the counts in the key: a month of top users and clients over every tenant
    // (~160,000 day rows among ~3.7 M hour rows at 10 M decisions) is an index-only scan of this small index.
    index("decision_actor_rollups_day_idx")
      .on(t.bucket, t.tenantId, t.kind, t.actor, t.allow, t.deny, t.error)
      .where(sql`grain = 'day'`),
    // No such index on the hour rows: tried in 0021 (317 MB at 10 M decisions) and dropped in 0023: the
    // group-by and chart reads of the partial days measured the same with and without it (docs/audit.md).
  ],
);

/**
 * Decisions per hour and per day × tenant × server × determining policy, by outcome: the log's group by
 * policy. A decision counts once per distinct policy id in `determining`, and once under a null policy_id
 * when it has none (the raw group-by's null group); unique with NULLS NOT DISTINCT so that null is one key.
 */
export const decisionPolicyRollups = pgTable(
  "decision_policy_rollups",
  {
    grain: text("grain", { enum: ["hour", "day"] }).notNull(),
    bucket: timestamp("bucket", { withTimezone: true }).notNull(),
    tenantId: text("tenant_id").notNull(),
    serverId: text("server_id").notNull(),
    policyId: text("policy_id"),
    allow: bigint("allow", { mode: "number" }).notNull().default(0),
    deny: bigint("deny", { mode: "number" }).notNull().default(0),
    error: bigint("error", { mode: "number" }).notNull().default(0),
  },
  (t) => [unique("decision_policy_rollups_key").on(t.grain, t.bucket, t.tenantId, t.serverId, t.policyId).nullsNotDistinct()],
);

/**
 * Decisions per day × tenant × server × tool × user × client × method × scope set, by outcome, with the
 * last (allowed) use and the newest (allowed) decision id: least-privilege findings read it instead of the
 * raw log (lib/findings/usage.ts). `scopes` is the decision's scope set as stored (jsonb array).
 */
export const decisionUsage = pgTable(
  "decision_usage",
  {
    day: timestamp("day", { withTimezone: true }).notNull(),
    tenantId: text("tenant_id").notNull(),
    serverId: text("server_id").notNull(),
    tool: text("tool").notNull(),
    userId: text("user_id").notNull(),
    clientId: text("client_id").notNull(),
    method: text("method").notNull(),
    scopes: jsonb("scopes").$type<string[]>().notNull(),
    ...rollupCounts(),
    lastAllowAt: timestamp("last_allow_at", { withTimezone: true, precision: 3 }),
    /** The greatest (newest: UUIDv7) decision id of the key that day, and of its allowed decisions. */
    lastId: text("last_id").notNull(),
    lastAllowId: text("last_allow_id"),
  },
  (t) => [
    primaryKey({ columns: [t.day, t.tenantId, t.serverId, t.tool, t.userId, t.clientId, t.method, t.scopes] }),
    index("decision_usage_tenant_day_idx").on(t.tenantId, t.day),
    // Findings read by server: the window's days, and the days before it for "last used".
    index("decision_usage_server_day_idx").on(t.serverId, t.day),
  ],
);

/** Scheduled jobs shared by every control-plane replica: one run per interval across replicas (advisory lock + last start). */
export const scheduledJobs = pgTable("scheduled_jobs", {
  name: text("name").primaryKey(),
  lastStartedAt: timestamp("last_started_at", { withTimezone: true }),
  lastFinishedAt: timestamp("last_finished_at", { withTimezone: true }),
  lastError: text("last_error"),
  runs: bigint("runs", { mode: "number" }).notNull().default(0),
  lastHolder: text("last_holder"),
});

// ---------------------------------------------------------------- approvals (issue 16)

/**
 * A named group of dashboard users who may approve calls that an `@approval("<name>")`
 * forbid holds for a person. Per tenant; members must hold a role in the tenant.
 */
export const approverGroups = pgTable(
  "approver_groups",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    createdBy: text("created_by").notNull(),
    createdAt: createdAt(),
  },
  (t) => [uniqueIndex("approver_groups_tenant_name_key").on(t.tenantId, t.name)],
);

export const approverGroupMembers = pgTable(
  "approver_group_members",
  {
    groupId: text("group_id")
      .notNull()
      .references(() => approverGroups.id, { onDelete: "cascade" }),
    userId: text("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    createdAt: createdAt(),
  },
  (t) => [primaryKey({ columns: [t.groupId, t.userId] }), index("approver_group_members_user_idx").on(t.userId)],
);

export const approvalStatuses = ["requested", "approved", "rejected", "expired", "executed"] as const;
export type ApprovalStatus = (typeof approvalStatuses)[number];

/**
 * One call waiting for (or decided by) a person: bound to its call hash (tenant, server, tool,
 * user, client, canonical arguments). Decided requests reach agents in the bundle's live
 * section `approvals` (lib/bundles/live.ts).
 */
export const approvalRequests = pgTable(
  "approval_requests",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id, { onDelete: "cascade" }),
    serverId: text("server_id")
      .notNull()
      .references(() => servers.id, { onDelete: "cascade" }),
    tool: text("tool").notNull(),
    // The token's user (`<issuer>#<subject>`) and client: four-eyes compares the user with the approver's SSO identity.
    userId: text("user_id").notNull(),
    clientId: text("client_id").notNull(),
    callHash: text("call_hash").notNull(),
    // Masked by the bundle's masking rules before it left the agent.
    args: jsonb("args").$type<Record<string, unknown>>().notNull(),
    policies: jsonb("policies").$type<string[]>().notNull(),
    approvers: jsonb("approvers").$type<string[]>().notNull(),
    status: text("status", { enum: approvalStatuses }).notNull().default("requested"),
    // "call": this exact call; "similar": any arguments of (tenant, server, tool, user, client) until approvalExpiresAt.
    scope: text("scope", { enum: ["call", "similar"] })
      .notNull()
      .default("call"),
    agentId: text("agent_id"),
    bundleRevision: integer("bundle_revision"),
    requestedAt: timestamp("requested_at", { withTimezone: true }).notNull().defaultNow(),
    // An undecided request stops counting at this time.
    expiresAt: timestamp("expires_at", { withTimezone: true }).notNull(),
    decidedBy: text("decided_by").references(() => users.id, { onDelete: "set null" }),
    decidedByLabel: text("decided_by_label"),
    decidedAt: timestamp("decided_at", { withTimezone: true }),
    reason: text("reason").notNull().default(""),
    // An approval allows the call until this time.
    approvalExpiresAt: timestamp("approval_expires_at", { withTimezone: true }),
    executedAt: timestamp("executed_at", { withTimezone: true }),
  },
  (t) => [
    index("approval_requests_tenant_idx").on(t.tenantId, t.status, t.requestedAt.desc()),
    index("approval_requests_hash_idx").on(t.tenantId, t.callHash),
    // At most one open request per call: a retried call finds it again.
    uniqueIndex("approval_requests_open_key")
      .on(t.tenantId, t.callHash)
      .where(sql`status = 'requested'`),
  ],
);

/** Approval settings of one tenant: how long a request waits, and a webhook (sealed like a vault secret) told of each request. */
export const approvalSettings = pgTable("approval_settings", {
  tenantId: text("tenant_id")
    .primaryKey()
    .references(() => tenants.id, { onDelete: "cascade" }),
  requestTtlMinutes: integer("request_ttl_minutes").notNull().default(15),
  webhook: jsonb("webhook").$type<SealedWebhook>(),
  webhookHint: text("webhook_hint"),
  updatedAt: updatedAt(),
});

// ---------------------------------------------------------------- relations

export const usersRelations = relations(users, ({ many }) => ({ memberships: many(memberships) }));
export const tenantsRelations = relations(tenants, ({ many }) => ({ memberships: many(memberships) }));
export const membershipsRelations = relations(memberships, ({ one }) => ({
  tenant: one(tenants, { fields: [memberships.tenantId], references: [tenants.id] }),
  user: one(users, { fields: [memberships.userId], references: [users.id] }),
}));
export const serversRelations = relations(servers, ({ many, one }) => ({
  tenant: one(tenants, { fields: [servers.tenantId], references: [tenants.id] }),
  tenantAccess: many(serverTenants),
  tools: many(tools),
}));
export const serverTenantsRelations = relations(serverTenants, ({ one }) => ({
  server: one(servers, { fields: [serverTenants.serverId], references: [servers.id] }),
  tenant: one(tenants, { fields: [serverTenants.tenantId], references: [tenants.id] }),
}));
export const toolsRelations = relations(tools, ({ one, many }) => ({
  server: one(servers, { fields: [tools.serverId], references: [servers.id] }),
  versions: many(toolVersions),
}));
export const toolVersionsRelations = relations(toolVersions, ({ one }) => ({
  tool: one(tools, { fields: [toolVersions.toolId], references: [tools.id] }),
}));

// ---------------------------------------------------------------- row types

export type User = typeof users.$inferSelect;
export type Tenant = typeof tenants.$inferSelect;
export type Membership = typeof memberships.$inferSelect;
export type ApiToken = typeof apiTokens.$inferSelect;
export type Invitation = typeof invitations.$inferSelect;
export type Server = typeof servers.$inferSelect;
export type NewServer = typeof servers.$inferInsert;
export type TenantIssuer = typeof tenantIssuers.$inferSelect;
export type Tool = typeof tools.$inferSelect;
export type ToolVersion = typeof toolVersions.$inferSelect;
export type ScopeMapping = typeof scopeMappings.$inferSelect;
export type AuditEvent = typeof auditEvents.$inferSelect;
export type Policy = typeof policies.$inferSelect;
export type PolicyTest = typeof policyTests.$inferSelect;
export type Fleet = typeof fleets.$inferSelect;
export type Agent = typeof agents.$inferSelect;
export type Bundle = typeof bundles.$inferSelect;
export type EnrollmentToken = typeof enrollmentTokens.$inferSelect;
export type SigningKey = typeof signingKeys.$inferSelect;
export type Decision = typeof decisions.$inferSelect;
export type VaultEntry = typeof vaultEntries.$inferSelect;
export type VaultVersion = typeof vaultVersions.$inferSelect;
export type OAuthClient = typeof oauthClients.$inferSelect;
export type Grant = typeof grants.$inferSelect;
export type Revocation = typeof revocations.$inferSelect;
export type MaskingRule = typeof maskingRules.$inferSelect;
export type NewDecision = typeof decisions.$inferInsert;
export type DecisionQuarantine = typeof decisionQuarantine.$inferSelect;
export type FindingSettings = typeof findingSettings.$inferSelect;
export type FindingMark = typeof findingMarks.$inferSelect;
export type PrivilegeScore = typeof privilegeScores.$inferSelect;
export type FindingResult = typeof findingResults.$inferSelect;
export type ApprovalRequest = typeof approvalRequests.$inferSelect;
export type ApproverGroup = typeof approverGroups.$inferSelect;

// Saved views of a dashboard list (the decision log): a name and a filter query string, per user.
export const savedViews = pgTable(
  "saved_views",
  {
    id: text("id").primaryKey(),
    userId: text("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    page: text("page", { enum: ["audit"] }).notNull(),
    name: text("name").notNull(),
    query: text("query").notNull(),
    createdAt: createdAt(),
  },
  (t) => [uniqueIndex("saved_views_user_page_name_key").on(t.userId, t.page, t.name)],
);
export type SavedView = typeof savedViews.$inferSelect;

// ---------------------------------------------------------------- brokered per-user upstream OAuth (issue 13)

export const connectionStatuses = ["active", "broken", "disconnected", "revoked"] as const;
export type ConnectionStatus = (typeof connectionStatuses)[number];

/**
 * One user's connection to an upstream (kind oauth_user_brokered): the
 * upstream AS's refresh and access token for (tenant, server, user), sealed
 * with envelope encryption (lib/vault/crypto.ts, AAD bound to the connection
 * and its generation). The tokens never leave the control plane except the
 * access token to an agent of a fleet serving the server. Ended connections
 * keep their row (tokens removed) until the user connects again.
 */
export const upstreamConnections = pgTable(
  "upstream_connections",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id, { onDelete: "cascade" }),
    serverId: text("server_id")
      .notNull()
      .references(() => servers.id, { onDelete: "cascade" }),
    // The user as the agent's principal names it: `<issuer>#<subject>` (qualifiedUser).
    userKey: text("user_key").notNull(),
    // The dashboard user who completed the connect flow (signed in with that SSO identity).
    userId: text("user_id").references(() => users.id, { onDelete: "set null" }),
    entryId: text("entry_id")
      .notNull()
      .references(() => vaultEntries.id, { onDelete: "cascade" }),
    status: text("status", { enum: connectionStatuses }).notNull(),
    scope: text("scope").notNull().default(""),
    // Bumped on every token write: the sealed tokens' AAD names it, so an older ciphertext copied back fails to open.
    generation: integer("generation").notNull().default(0),
    ciphertext: text("ciphertext"),
    wrappedKey: text("wrapped_key"),
    kekId: text("kek_id"),
    accessExpiresAt: timestamp("access_expires_at", { withTimezone: true }),
    connectedAt: timestamp("connected_at", { withTimezone: true }),
    refreshedAt: timestamp("refreshed_at", { withTimezone: true }),
    // When it stopped (disconnect, revoke, failed refresh): agents drop access tokens they fetched before it (live section `connectionCuts`).
    endedAt: timestamp("ended_at", { withTimezone: true }),
    endedBy: text("ended_by"),
    endReason: text("end_reason"),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    uniqueIndex("upstream_connections_key").on(t.tenantId, t.serverId, t.userKey),
    index("upstream_connections_server_idx").on(t.serverId, t.endedAt),
    index("upstream_connections_user_idx").on(t.userId),
  ],
);
export type UpstreamConnection = typeof upstreamConnections.$inferSelect;

export const connectRequestStatuses = ["open", "started", "completed", "expired"] as const;

/**
 * A request to connect (tenant, server, user), filed by an agent when a call
 * needs the user's upstream token and none is usable; its page is
 * /connect/<id>. Starting the flow records a fresh nonce (hashed) and who
 * started it; the signed `state` names both and is good once.
 */
export const connectRequests = pgTable(
  "connect_requests",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id, { onDelete: "cascade" }),
    serverId: text("server_id")
      .notNull()
      .references(() => servers.id, { onDelete: "cascade" }),
    userKey: text("user_key").notNull(),
    status: text("status", { enum: connectRequestStatuses }).notNull().default("open"),
    nonceHash: text("nonce_hash"),
    startedBy: text("started_by").references(() => users.id, { onDelete: "set null" }),
    flowExpiresAt: timestamp("flow_expires_at", { withTimezone: true }),
    expiresAt: timestamp("expires_at", { withTimezone: true }).notNull(),
    completedAt: timestamp("completed_at", { withTimezone: true }),
    createdAt: createdAt(),
  },
  (t) => [index("connect_requests_key_idx").on(t.tenantId, t.serverId, t.userKey, t.status)],
);
export type ConnectRequest = typeof connectRequests.$inferSelect;

/**
 * Cedar conversions of a fleet's policies as its last compile made them (lib/bundles/conversions.ts):
 * the first compile of a process reads them instead of converting every policy again. `key` is a
 * SHA-256 of exactly the value's inputs (kind, converter version, policy text, tenants, server,
 * schema; lib/bundles/compile.ts `conversionKey`), so a changed policy never meets a stale value.
 * Derived data beside the policies it comes from; replaced after each compile by the keys it used.
 */
export const compileConversions = pgTable(
  "compile_conversions",
  {
    fleetId: text("fleet_id")
      .notNull()
      .references(() => fleets.id, { onDelete: "cascade" }),
    key: text("key").notNull(),
    value: text("value").notNull(),
  },
  (t) => [primaryKey({ columns: [t.fleetId, t.key] })],
);
