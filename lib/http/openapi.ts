import { policyRestoreInput } from "@/lib/policy/restore";
import { z } from "zod";
import { confirmOriginInput, createEntryInput, listEntriesQuery, resolveCredentialInput, rotateEntryInput, updateEntryInput } from "@/lib/vault/service";
import { endGraceInput, makeCurrentInput } from "@/lib/vault/rollback";
import { bundleQuery } from "@/lib/agents/serve-bundle";
import { enrollInput, heartbeatInput } from "@/lib/agents/service";
import { changePasswordInput, createUserInput, updateUserInput } from "@/lib/auth/users";
import { createTokenInput } from "@/lib/auth/tokens";
import { createEnrollmentTokenInput, createFleetInput, updateFleetInput } from "@/lib/fleets/service";
import { addToolInput, approveToolInput, blockToolInput, toolListQuery, toolVersionListQuery, updateToolInput } from "@/lib/catalog/service";
import { pageQuery } from "@/lib/pagination";
import { putScopeMappingInput } from "@/lib/scopes/service";
import { maskingRuleInput } from "@/lib/masking/service";
import { impactInput } from "@/lib/bundles/impact";
import { createServerInput, updateServerInput } from "@/lib/servers/schemas";
import { addMemberInput, createTenantInput, updateMemberInput, updateTenantInput } from "@/lib/tenants/service";
import { tenantIssuerInput } from "@/lib/tenants/trust";
import { trailExportQuery, trailQuery } from "@/lib/trail/service";
import { approvalListQuery, approvalSettingsInput, createGroupInput, decideApprovalInput, groupListQuery, groupMemberInput } from "@/lib/approvals/service";
import { approvalReport } from "@/lib/enforcement/approval";
import { connectionTokenInput } from "@/lib/connections/contract";
import { callbackQuery, connectionListQuery } from "@/lib/connections/service";
import { clientApprovalInput, clientListQuery, grantListQuery, importGrantsInput, revocationListQuery, revokeGrantInput, revokeInput } from "@/lib/grants/service";
import { publishInput } from "@/lib/bundles/service";
import { decisionLine } from "@/lib/decisions/ingest";
import { settingsInput } from "@/lib/decisions/retention";
import { decisionChartsQuery } from "@/lib/decisions/charts";
import { overviewHealthQuery } from "@/lib/overview/health";
import { decisionExportQuery } from "@/lib/decisions/export";
import { decisionGroupQuery } from "@/lib/decisions/group";
import { savedViewInput } from "@/lib/decisions/views";
import { decisionSearchQuery } from "@/lib/decisions/query";
import { quarantineQuery } from "@/lib/decisions/quarantine";
import { findingExportQuery, findingListQuery, recomputeInput, remedyInput, scoreQuery, settingsInput as findingSettingsInput, settingsQuery as findingSettingsQuery } from "@/lib/findings/service";
import { cedarCheckInput, policyInput, policyTestInput, policyTestUpdateInput, policyUpdateInput, simulateInput } from "@/lib/policy/service";

const policyListQuery = z.object({ tenantId: z.string().optional(), serverId: z.string().optional() });

type Method = "get" | "post" | "put" | "patch" | "delete";

/** One API operation. A test checks these lists against the route files. */
export interface Operation {
  method: Method;
  path: string;
  summary: string;
  tag: string;
  body?: z.ZodType;
  query?: z.ZodObject;
  created?: boolean;
  noContent?: boolean;
  /** Agent API only: how the call authenticates (default: the agent key). */
  auth?: "agentKey" | "none";
  /** Agent API only: the success body, by component name. */
  response?: string;
  /** Agent API only: answers beyond the defaults. */
  extraResponses?: Record<string, string>;
}

const serversQuery = pageQuery.extend({ tenantId: z.string().optional().describe("Only servers this tenant may use") });

export const operations: Operation[] = [
  { method: "get", path: "/api/v1/admin/me", summary: "Who is acting, and the tenants they can reach", tag: "identity" },
  {
    method: "post",
    path: "/api/v1/admin/me/password",
    summary:
      "Change your own password (ends every session). With GET /me, the only call open to a user still holding a one-time password; completing that change revokes every API token the user made before",
    tag: "identity",
    body: changePasswordInput,
    noContent: true,
  },
  { method: "get", path: "/api/v1/admin/users", summary: "List users (owners and global auditors)", tag: "identity", query: pageQuery },
  {
    method: "post",
    path: "/api/v1/admin/users",
    summary:
      "Create a user with no credential (owners); returns { user, invitation: { url, expiresAt } } once. The link (secret in its fragment) is for the invitee, who chooses a password at POST /api/auth/invitation or signs in with SSO; single use, expiring, stored hashed. No password field: the creator never knows one",
    tag: "identity",
    body: createUserInput,
    created: true,
  },
  {
    method: "post",
    path: "/api/v1/admin/users/{userId}/invitation",
    summary: "A new invitation link for a user who has neither a password nor an SSO identity yet (owners); earlier links stop working (409 once the user has a credential)",
    tag: "identity",
    created: true,
  },
  { method: "patch", path: "/api/v1/admin/users/{userId}", summary: "Rename, change global role, disable", tag: "identity", body: updateUserInput },
  { method: "get", path: "/api/v1/admin/tenants", summary: "Tenants the caller can read", tag: "tenants", query: pageQuery },
  { method: "post", path: "/api/v1/admin/tenants", summary: "Create a tenant (owners)", tag: "tenants", body: createTenantInput, created: true },
  { method: "get", path: "/api/v1/admin/tenants/{tenantId}", summary: "One tenant", tag: "tenants" },
  { method: "patch", path: "/api/v1/admin/tenants/{tenantId}", summary: "Rename; disable or enable (owners)", tag: "tenants", body: updateTenantInput },
  { method: "get", path: "/api/v1/admin/tenants/{tenantId}/members", summary: "Members and their roles", tag: "tenants" },
  {
    method: "post",
    path: "/api/v1/admin/tenants/{tenantId}/members",
    summary: "Add a member; an unknown e-mail creates the user with no credential and returns its invitation link once (`invitation`, else null)",
    tag: "tenants",
    body: addMemberInput,
    created: true,
  },
  { method: "patch", path: "/api/v1/admin/tenants/{tenantId}/members/{userId}", summary: "Change a member's role", tag: "tenants", body: updateMemberInput },
  { method: "delete", path: "/api/v1/admin/tenants/{tenantId}/members/{userId}", summary: "Remove a member", tag: "tenants", noContent: true },
  { method: "get", path: "/api/v1/admin/tenants/{tenantId}/issuers", summary: "Issuers this tenant trusts (trust is granted by a tenant, never by a server)", tag: "tenants" },
  {
    method: "post",
    path: "/api/v1/admin/tenants/{tenantId}/issuers",
    summary: "Trust an issuer for this tenant: key source, algorithms, claim paths, tenant mapping, optional typ at+jwt",
    tag: "tenants",
    body: tenantIssuerInput,
    created: true,
  },
  { method: "get", path: "/api/v1/admin/tenants/{tenantId}/issuers/{issuerId}", summary: "One trusted issuer", tag: "tenants" },
  {
    method: "put",
    path: "/api/v1/admin/tenants/{tenantId}/issuers/{issuerId}",
    summary: "Replace a trusted issuer's configuration (the old one leaves live bundles at once; the new one arrives with the next publish)",
    tag: "tenants",
    body: tenantIssuerInput,
  },
  {
    method: "delete",
    path: "/api/v1/admin/tenants/{tenantId}/issuers/{issuerId}",
    summary: "Stop trusting an issuer (live bundles are republished without it at once)",
    tag: "tenants",
    noContent: true,
  },
  { method: "get", path: "/api/v1/admin/servers", summary: "MCP servers the caller can read", tag: "servers", query: serversQuery },
  { method: "post", path: "/api/v1/admin/servers", summary: "Register an MCP server (a protected resource)", tag: "servers", body: createServerInput, created: true },
  { method: "get", path: "/api/v1/admin/servers/{serverId}", summary: "One server with its Protected Resource Metadata", tag: "servers" },
  { method: "patch", path: "/api/v1/admin/servers/{serverId}", summary: "Change a server", tag: "servers", body: updateServerInput },
  { method: "delete", path: "/api/v1/admin/servers/{serverId}", summary: "Delete a server and its catalogue", tag: "servers", noContent: true },
  {
    method: "get",
    path: "/api/v1/admin/servers/{serverId}/tools",
    summary:
      "The server's catalogue of one kind (kind=tool by default; resource, resourceTemplate or prompt): each entry with its kind, status, approved and latest version (resources, templates and prompts carry the listed definition in `definition`; a prompt's arguments are its inputSchema). Approve, block and history use the /tools/{toolId} calls for every kind",
    tag: "catalogue",
    query: toolListQuery,
  },
  { method: "post", path: "/api/v1/admin/servers/{serverId}/tools", summary: "Add a tool by hand (approved at once)", tag: "catalogue", body: addToolInput, created: true },
  {
    method: "post",
    path: "/api/v1/admin/servers/{serverId}/import",
    summary:
      "Import the live catalogue from the upstream: tools/list, and resources/list, resources/templates/list and prompts/list when its capabilities announce them (one connection, official MCP SDK client, through the egress guard) with the owning tenant's vault entry, else the shared one (each read of the secret is in the trail as vault.read); 409 when that entry is suspended (the upstream moved) or has no current version; 502 upstream_error says what failed (the upstream refused the credential, naming the entry; a credential is required and none is stored; TLS, timeout, refused address), never the upstream's body. The answer counts tools at the top level and resources, templates and prompts in `entries`",
    tag: "catalogue",
  },
  { method: "get", path: "/api/v1/admin/servers/{serverId}/scopes", summary: "The current scope × tool matrix", tag: "scopes" },
  { method: "put", path: "/api/v1/admin/servers/{serverId}/scopes", summary: "Save a new version of the matrix (optimistic: baseVersion)", tag: "scopes", body: putScopeMappingInput },
  { method: "get", path: "/api/v1/admin/servers/{serverId}/scopes/versions", summary: "Every saved version of the matrix", tag: "scopes" },
  {
    method: "get",
    path: "/api/v1/admin/tools/{toolId}",
    summary:
      "A tool, the pending diff and the latest 20 versions of its history as summaries (id, version, hash, seen at, size; historyTotal counts them all). Full definitions: only the approved and the latest version (bounded: at most 2,000 lines per version are compared; diffTruncated says what was left out)",
    tag: "catalogue",
  },
  {
    method: "get",
    path: "/api/v1/admin/tools/{toolId}/versions",
    summary: "The tool's version history, newest first, paged (at most 50 a page), as summaries without definitions",
    tag: "catalogue",
    query: toolVersionListQuery,
  },
  { method: "get", path: "/api/v1/admin/tools/{toolId}/versions/{versionId}", summary: "One version of the tool with its full definition", tag: "catalogue" },
  { method: "patch", path: "/api/v1/admin/tools/{toolId}", summary: "Set the risk label", tag: "catalogue", body: updateToolInput },
  { method: "post", path: "/api/v1/admin/tools/{toolId}/approve", summary: "Approve the reviewed latest version", tag: "catalogue", body: approveToolInput },
  { method: "post", path: "/api/v1/admin/tools/{toolId}/block", summary: "Block a tool", tag: "catalogue", body: blockToolInput },
  { method: "delete", path: "/api/v1/admin/tools/{toolId}/block", summary: "Unblock a tool", tag: "catalogue" },
  {
    method: "get",
    path: "/api/v1/admin/trail",
    summary: "The admin trail, newest first, keyset-paged; names: each target's name and dashboard link by target type and id (only objects of the caller's tenants are named)",
    tag: "trail",
    query: trailQuery,
  },
  { method: "get", path: "/api/v1/admin/tokens", summary: "API tokens the caller manages", tag: "tokens" },
  { method: "post", path: "/api/v1/admin/tokens", summary: "Create an API token; the secret is in this answer only", tag: "tokens", body: createTokenInput, created: true },
  { method: "delete", path: "/api/v1/admin/tokens/{tokenId}", summary: "Revoke an API token", tag: "tokens", noContent: true },
  { method: "get", path: "/api/v1/admin/fleets", summary: "Fleets the caller can read (tenant members: fleets serving their servers)", tag: "fleets" },
  { method: "post", path: "/api/v1/admin/fleets", summary: "Create a fleet of agents serving some servers (owners)", tag: "fleets", body: createFleetInput, created: true },
  { method: "get", path: "/api/v1/admin/fleets/{fleetId}", summary: "One fleet with its servers, agents and active revision", tag: "fleets" },
  { method: "patch", path: "/api/v1/admin/fleets/{fleetId}", summary: "Rename, describe, replace its servers (owners)", tag: "fleets", body: updateFleetInput },
  { method: "delete", path: "/api/v1/admin/fleets/{fleetId}", summary: "Delete a fleet with its agents, tokens and bundles (owners)", tag: "fleets", noContent: true },
  { method: "get", path: "/api/v1/admin/fleets/{fleetId}/enrollment-tokens", summary: "The fleet's enrollment tokens, never their secrets (owners, global auditors)", tag: "fleets" },
  {
    method: "post",
    path: "/api/v1/admin/fleets/{fleetId}/enrollment-tokens",
    summary: "Mint a one-time enrollment token (mde_…); it is in this answer only (owners)",
    tag: "fleets",
    body: createEnrollmentTokenInput,
    created: true,
  },
  { method: "delete", path: "/api/v1/admin/fleets/{fleetId}/enrollment-tokens/{tokenId}", summary: "Revoke an unused enrollment token (owners)", tag: "fleets", noContent: true },
  { method: "post", path: "/api/v1/admin/agents/{agentId}/rotate-key", summary: "Replace an agent's key; the new key is in this answer only (owners)", tag: "fleets" },
  { method: "delete", path: "/api/v1/admin/agents/{agentId}", summary: "Revoke an agent: its key stops working at once (owners)", tag: "fleets", noContent: true },
  // Policies, tests, bundles
  { method: "get", path: "/api/v1/admin/policies", summary: "Policies of the tenants the caller reads", tag: "policies", query: policyListQuery },
  { method: "post", path: "/api/v1/admin/policies", summary: "Create a rule or Cedar policy (validated against the server's Cedar schema)", tag: "policies", body: policyInput, created: true },
  { method: "get", path: "/api/v1/admin/policies/{policyId}", summary: "One policy with its Cedar", tag: "policies" },
  { method: "patch", path: "/api/v1/admin/policies/{policyId}", summary: "Change a policy (revalidated)", tag: "policies", body: policyUpdateInput },
  { method: "delete", path: "/api/v1/admin/policies/{policyId}", summary: "Delete a policy", tag: "policies", noContent: true },
  {
    method: "post",
    path: "/api/v1/admin/policies/{policyId}/restore",
    summary: "Restore a version from the policy's history (a policy.create, policy.update or policy.restore event): a new draft through the same checks as an edit, recorded as policy.restore",
    tag: "policies",
    body: policyRestoreInput,
  },
  {
    method: "post",
    path: "/api/v1/admin/policies/check",
    summary:
      "Validate Cedar or a rule: issues at their line, formatted text, compiled Cedar. Text past the bounds (32 nested brackets, expression depth 60) is an issue with its position; parsed in an isolated worker (429 when its queue is full)",
    tag: "policies",
    body: cedarCheckInput,
  },
  {
    method: "get",
    path: "/api/v1/admin/servers/{serverId}/cedar-schema",
    summary: "The Cedar schema generated for a server: JSON (schema) and text, argument types, and each tool with the argument names of its approved definition",
    tag: "policies",
  },
  { method: "get", path: "/api/v1/admin/policy-tests", summary: "Policy tests of the tenants the caller reads", tag: "policies", query: policyListQuery },
  { method: "post", path: "/api/v1/admin/policy-tests", summary: "Add a test: a request and the decision it must get", tag: "policies", body: policyTestInput, created: true },
  { method: "patch", path: "/api/v1/admin/policy-tests/{testId}", summary: "Change a test", tag: "policies", body: policyTestUpdateInput },
  { method: "delete", path: "/api/v1/admin/policy-tests/{testId}", summary: "Delete a test", tag: "policies", noContent: true },
  {
    method: "post",
    path: "/api/v1/admin/policy-tests/run",
    summary: "Compile a server's current policies and run its tests",
    tag: "policies",
    body: z.object({ serverId: z.string(), tenantId: z.string().optional() }),
  },
  { method: "post", path: "/api/v1/admin/simulate", summary: "Decide one request against a draft or a published bundle", tag: "policies", body: simulateInput },
  {
    method: "get",
    path: "/api/v1/admin/fleets/{fleetId}/draft",
    summary: "The next revision as it would be published: issues, tests, tenants held at the live revision (heldBack), diff (servers field by field)",
    tag: "bundles",
  },
  { method: "get", path: "/api/v1/admin/fleets/{fleetId}/bundles", summary: "Published revisions, newest first", tag: "bundles" },
  {
    method: "post",
    path: "/api/v1/admin/fleets/{fleetId}/bundles",
    summary: "Publish the draft: a tenant whose own policy or test fails is held at the live revision (listed in heldBack); any other problem blocks, every one listed",
    tag: "bundles",
    body: publishInput,
    created: true,
  },
  { method: "get", path: "/api/v1/admin/fleets/{fleetId}/bundles/{revision}", summary: "One signed revision with its content", tag: "bundles" },
  {
    method: "post",
    path: "/api/v1/admin/fleets/{fleetId}/bundles/{revision}/rollback",
    summary: "Publish an older revision's policies, scope mappings and catalogue as a new revision; servers and live state (revocations, approvals, credentials, masking) stay as they are now",
    tag: "bundles",
    created: true,
  },
  {
    method: "get",
    path: "/api/v1/admin/fleets/{fleetId}/diff",
    summary: "What changed between two revisions",
    tag: "bundles",
    query: z.object({ from: z.coerce.number().int().min(1), to: z.coerce.number().int().min(1) }),
  },
  { method: "post", path: "/api/v1/admin/signing-keys/rotate", summary: "Make a new Ed25519 bundle-signing key active (owners)", tag: "bundles", created: true },
  // -- vault (issue 5)
  {
    method: "get",
    path: "/api/v1/admin/vault",
    summary: "Vault entries by server and tenant: kind, placement, current version, fingerprint, rotation due (never secrets)",
    tag: "vault",
    query: listEntriesQuery,
  },
  {
    method: "post",
    path: "/api/v1/admin/vault",
    summary: "Create an upstream credential (version 1 current); the secret is write-only and never returned",
    tag: "vault",
    body: createEntryInput,
    created: true,
  },
  { method: "post", path: "/api/v1/admin/vault/rewrap", summary: "Rewrap every vault data key and signing key sealed with a previous KEK into the active one (owners)", tag: "vault" },
  { method: "get", path: "/api/v1/admin/vault/{entryId}", summary: "One entry with its versions timeline (fingerprints and last characters, never secrets)", tag: "vault" },
  { method: "patch", path: "/api/v1/admin/vault/{entryId}", summary: "Change name, notes, owner, rotation interval or placement (not the secret: rotate)", tag: "vault", body: updateEntryInput },
  {
    method: "post",
    path: "/api/v1/admin/vault/{entryId}/rotate",
    summary: "Add a secret version (write-only): current now with the previous one in grace, or scheduled at activateAt",
    tag: "vault",
    body: rotateEntryInput,
  },
  { method: "post", path: "/api/v1/admin/vault/{entryId}/retire", summary: "Retire the entry and every version: agents stop using it with the next live bundle", tag: "vault" },
  {
    method: "post",
    path: "/api/v1/admin/vault/{entryId}/confirm-origin",
    summary: "Confirm a suspended secret (the server's upstream moved to another origin) for the new origin, without re-entering it; needs vault.write in the entry's tenant; recorded in the trail",
    tag: "vault",
    body: confirmOriginInput,
  },
  {
    method: "post",
    path: "/api/v1/admin/vault/{entryId}/make-current",
    summary:
      "Make an earlier version current again (a rollback): in its grace or retired less than 30 days ago, current once, stored for the server's current upstream origin (each version's cannotRestore says why not). The replaced version goes to grace for graceSeconds (0: retired), a pending scheduled version is cancelled; 409 when `replacing` is no longer the current version. Needs vault.write in the entry's tenant; recorded as vault.make_current; the live bundles are republished so agents switch as after a rotation",
    tag: "vault",
    body: makeCurrentInput,
  },
  {
    method: "post",
    path: "/api/v1/admin/vault/{entryId}/end-grace",
    summary:
      "End a version's grace period now: it is retired at once and the broker refuses it from the commit on; 409 for a version not in its grace. Needs vault.write in the entry's tenant; recorded as vault.end_grace; the live bundles are republished",
    tag: "vault",
    body: endGraceInput,
  },
  {
    method: "get",
    path: "/api/v1/admin/vault/{entryId}/agents",
    summary:
      "Which agents use which version: every agent (not revoked) of the fleets serving the entry's server, with its fleet, last heartbeat and the version it reported holding in its heartbeat (use.state holds, not_held, or unknown for agents that do not report it); byVersion counts them",
    tag: "vault",
  },
  {
    method: "post",
    path: "/api/v1/admin/vault/{entryId}/test-connection",
    summary:
      "Try the upstream with the entry's current secret (MCP initialize + tools/list through the egress guard, placed as the agent places it). Answers { ok: true, version, toolCount, latencyMs } or { ok: false, failure: unauthorized | http_status | tls | timeout | dns | connect | refused_address | redirect | credential | protocol, status, message }, never a body or the secret. Needs vault.write in the entry's tenant (it opens the secret); recorded as vault.test_connection; 429 after 5 tests a minute per user; 409 for a retired, suspended or token-exchange entry",
    tag: "vault",
  },
  // -- least privilege (issue 15)
  {
    method: "get",
    path: "/api/v1/admin/findings",
    summary:
      "Least-privilege findings computed from the decision log and the registry (tenant admins and auditors: their tenants; owners and global auditors also the fleet-wide ones), each with evidence (counts, last use, example decision ids) and remedies; counts per kind, privilege scores and computation time. Each scope (tenant, fleet-wide) is read from the hourly findings job's stored result while it is fresh (computed less than 75 minutes ago with the current settings, and no admin change of that tenant since), else computed live; computedAt (the oldest part), source (stored | live | mixed) and scopes[] say which",
    tag: "findings",
    query: findingListQuery,
  },
  { method: "get", path: "/api/v1/admin/findings/export", summary: "The findings as a CSV or NDJSON attachment", tag: "findings", query: findingExportQuery },
  {
    method: "get",
    path: "/api/v1/admin/findings/scores",
    summary: "A tenant's privilege score (share of granted scope × tool pairs and grants used in the window) per day, and now",
    tag: "findings",
    query: scoreQuery,
  },
  {
    method: "get",
    path: "/api/v1/admin/findings/settings",
    summary: "Least-privilege settings of a tenant (or, without tenantId, the fleet-wide ones): unused window, small-share threshold, the digest webhook's scheme and host",
    tag: "findings",
    query: findingSettingsQuery,
  },
  {
    method: "put",
    path: "/api/v1/admin/findings/settings",
    summary: "Change least-privilege settings (tenant admins; fleet-wide: owners). The webhook URL is sealed with the key-encryption key and never returned or logged",
    tag: "findings",
    query: findingSettingsQuery,
    body: findingSettingsInput,
  },
  {
    method: "get",
    path: "/api/v1/admin/findings/digest",
    summary: "The weekly digest as it would be sent now: e-mail-ready text and the Slack-compatible webhook JSON, listing findings new since the last digest",
    tag: "findings",
    query: findingSettingsQuery,
  },
  {
    method: "post",
    path: "/api/v1/admin/findings/recompute",
    summary:
      "Recompute now, live, the findings of the scopes the caller reads (one tenant with tenantId; without it every tenant it reads and, for owners and global auditors, the fleet-wide findings) and store them in place of the job's result; answers the list as GET does, computed now. Recorded as findings.recompute; 429 after 3 recomputes in 5 minutes per user",
    tag: "findings",
    body: recomputeInput,
  },
  { method: "get", path: "/api/v1/admin/findings/{findingId}", summary: "One finding (404 when it is another tenant's or was remedied); may come from the stored result", tag: "findings" },
  {
    method: "post",
    path: "/api/v1/admin/findings/{findingId}/preview",
    summary:
      "What a policy-changing remedy (narrow_mapping, remove_from_mapping, block_tool, least_privilege_policy) would change, and its impact on the finding's window: every tools/call decision of the server replayed with decide() against the draft as it is and with the remedy; writes nothing. The finding is computed again live first: 409 when it no longer holds",
    tag: "findings",
    body: remedyInput,
  },
  {
    method: "post",
    path: "/api/v1/admin/findings/{findingId}/remedy",
    summary:
      "Create the remedy's draft through the scope-mapping, catalogue or policy service after computing its impact; the finding is computed again live first, and a finding that no longer holds (listed from the store, gone now) is refused with 409 (as for preview); 409 also when it would stop calls unless acknowledgeFlips. Publish it from the fleet page (tests, impact analysis, publish)",
    tag: "findings",
    body: remedyInput,
    created: true,
  },
  // -- grants, clients, revocations (issue 5)
  { method: "get", path: "/api/v1/admin/grants", summary: "Delegated grants (user, client, server, tenant) with usage, most recently used first", tag: "grants", query: grantListQuery },
  { method: "post", path: "/api/v1/admin/grants/import", summary: "Import grants exported by an authorization server (all or nothing)", tag: "grants", body: importGrantsInput },
  { method: "get", path: "/api/v1/admin/grants/{grantId}", summary: "One grant with its usage", tag: "grants" },
  {
    method: "post",
    path: "/api/v1/admin/grants/{grantId}/revoke",
    summary: "Revoke a grant: its tokens issued before now are refused by every agent",
    tag: "grants",
    body: revokeGrantInput,
    created: true,
  },
  { method: "get", path: "/api/v1/admin/revocations", summary: "Revocation history, newest first", tag: "grants", query: revocationListQuery },
  { method: "post", path: "/api/v1/admin/revocations", summary: "Revoke every grant of a user or of a client in a tenant", tag: "grants", body: revokeInput, created: true },
  { method: "get", path: "/api/v1/admin/clients", summary: "A tenant's OAuth clients and whether it requires approval", tag: "grants", query: clientListQuery },
  { method: "put", path: "/api/v1/admin/clients/approval", summary: "Require (or not) an admin's approval of each OAuth client of a tenant", tag: "grants", body: clientApprovalInput },
  { method: "post", path: "/api/v1/admin/clients/{clientId}/approve", summary: "Approve an OAuth client", tag: "grants" },
  { method: "post", path: "/api/v1/admin/clients/{clientId}/block", summary: "Block an OAuth client", tag: "grants" },
  { method: "post", path: "/api/v1/admin/clients/{clientId}/reset", summary: "Put an OAuth client back to pending", tag: "grants" },
  { method: "post", path: "/api/v1/admin/clients/{clientId}/metadata", summary: "Fetch the client ID metadata document; store its name and redirect URIs", tag: "grants" },
  // -- decision log (issue 6)
  {
    method: "get",
    path: "/api/v1/admin/decisions",
    summary:
      "Search decisions (default: last 24 h), newest first, keyset-paged; `after` for a live tail. Each row has its determining policy ids; `names` maps the page's tenant, server, fleet, agent and policy ids to their names (only those of tenants the viewer may read; a missing id is shown as is)",
    tag: "decisions",
    query: decisionSearchQuery,
  },
  { method: "get", path: "/api/v1/admin/decisions/views", summary: "The caller's saved views of the decision log (name and filter query string), by name", tag: "decisions" },
  {
    method: "post",
    path: "/api/v1/admin/decisions/views",
    summary: "Save a view of the decision log for the caller (at most 50; saving a name again replaces its query)",
    tag: "decisions",
    body: savedViewInput,
    created: true,
  },
  { method: "delete", path: "/api/v1/admin/decisions/views/{viewId}", summary: "Delete one of the caller's saved views (another user's is a 404)", tag: "decisions", noContent: true },
  {
    method: "get",
    path: "/api/v1/admin/decisions/groups",
    summary:
      "Counts of the filter's decisions per tool, user, client, determining policy or outcome (largest first, at most 50 groups, `others` for the rest; by outcome from the rollups when they answer the filter), over the filter's window widened to whole UTC buckets as the charts widen theirs (minutes up to 2 h, hours up to 3 days, else days): the answer's `from`, `to` (ISO, end exclusive) and `bucket` name the window counted",
    tag: "decisions",
    query: decisionGroupQuery,
  },
  { method: "get", path: "/api/v1/admin/decisions/charts", summary: "Decisions over time by outcome; top denied tools, users and clients", tag: "decisions", query: decisionChartsQuery },
  {
    method: "get",
    path: "/api/v1/admin/overview",
    summary:
      "Operational health for the dashboard Overview: decisions of the last 24 h by hour, agents online and behind, fleets with unpublished changes (owners, global auditors), drifted tools, vault entries due for rotation, clients awaiting approval; scoped to the tenants the viewer may read",
    tag: "decisions",
    query: overviewHealthQuery,
  },
  {
    method: "get",
    path: "/api/v1/admin/decisions/export",
    summary: "Stream the filter's decisions as a CSV or NDJSON attachment; follow=1 keeps an NDJSON stream open (SIEM)",
    tag: "decisions",
    query: decisionExportQuery,
  },
  {
    method: "get",
    path: "/api/v1/admin/decisions/quarantine",
    summary:
      "Decision lines agents sent that ingest quarantined instead of storing (bad content, or a server or tenant the agent's fleet does not serve): total, last 24 h, per agent, and the most recent with their problem and raw text cut to 4 KiB (owners, global auditors)",
    tag: "decisions",
    query: quarantineQuery,
  },
  {
    method: "get",
    path: "/api/v1/admin/decisions/{decisionId}",
    summary:
      "One decision: masked arguments, determining policies with their Cedar text at that revision, token claims, simulator link, latency in ms, names of its tenant, server, fleet, agent and policies, and traceId (the OpenTelemetry trace id when the agent traced the call, else null)",
    tag: "decisions",
  },
  { method: "get", path: "/api/v1/admin/trail/export", summary: "Stream the filtered admin trail as a CSV or NDJSON attachment", tag: "trail", query: trailExportQuery },
  { method: "get", path: "/api/v1/admin/settings", summary: "Instance settings: decision retention in days (owners and global auditors)", tag: "settings" },
  {
    method: "patch",
    path: "/api/v1/admin/settings",
    summary: "Change instance settings (owners): decisionRetentionDays 1..3650; the hourly job drops older daily partitions",
    tag: "settings",
    body: settingsInput,
  },
  {
    method: "get",
    path: "/api/v1/admin/demo",
    summary: "Whether the live demo (sample data, started by npm start) is on, with its tenant and protected MCP URL (to those who may read the demo tenant)",
    tag: "settings",
  },
  {
    method: "delete",
    path: "/api/v1/admin/demo",
    summary:
      "Remove the demo (owners): deletes the demo tenant, its server, fleet, agent, policies, grants, clients and decisions, records demo.remove in the trail (the demo is not seeded again) and stops the demo's local processes",
    tag: "settings",
  },
  // -- approvals of tool calls (issue 16)
  {
    method: "get",
    path: "/api/v1/admin/approvals",
    summary:
      "Approval requests of the tenants the caller reads, newest first; view=mine (default) keeps the open ones the caller may decide (a member of an approver group the request names, not the caller's own call)",
    tag: "approvals",
    query: approvalListQuery,
  },
  {
    method: "get",
    path: "/api/v1/admin/approvals/{approvalId}",
    summary:
      "One approval request: the call (tool, server, caller, client, masked arguments, call hash), the policies and approver groups that asked, status, expiry, who decided, and whether the caller may decide it",
    tag: "approvals",
  },
  {
    method: "post",
    path: "/api/v1/admin/approvals/{approvalId}/decide",
    summary:
      "Approve (this exact call, or with similarMinutes any arguments of the same tool, caller and client for that long) or reject an open request, with a reason. Only a member of a named approver group who holds a role in the request's tenant; never the caller (four-eyes, by SSO identity). Republishes the live bundles serving the server (agents learn of it within about a second)",
    tag: "approvals",
    body: decideApprovalInput,
  },
  { method: "get", path: "/api/v1/admin/approver-groups", summary: 'A tenant\'s approver groups (the names @approval("…") uses) and their members', tag: "approvals", query: groupListQuery },
  { method: "post", path: "/api/v1/admin/approver-groups", summary: "Create an approver group (members.write)", tag: "approvals", body: createGroupInput, created: true },
  { method: "delete", path: "/api/v1/admin/approver-groups/{groupId}", summary: "Delete an approver group", tag: "approvals", noContent: true },
  {
    method: "post",
    path: "/api/v1/admin/approver-groups/{groupId}/members",
    summary: "Add a member by e-mail (a user who holds a role in the group's tenant, or an owner)",
    tag: "approvals",
    body: groupMemberInput,
    created: true,
  },
  { method: "delete", path: "/api/v1/admin/approver-groups/{groupId}/members/{userId}", summary: "Remove a member", tag: "approvals", noContent: true },
  { method: "get", path: "/api/v1/admin/tenants/{tenantId}/approval-settings", summary: "How long a tenant's requests wait (minutes) and its webhook's host", tag: "approvals" },
  {
    method: "put",
    path: "/api/v1/admin/tenants/{tenantId}/approval-settings",
    summary: "Set request expiry and the Slack-compatible webhook told of each new request (write-only, sealed like a vault secret; empty removes it)",
    tag: "approvals",
    body: approvalSettingsInput,
  },
  // -- masking and impact analysis (issue 6)
  { method: "get", path: "/api/v1/admin/servers/{serverId}/masking", summary: "The server's decision masking rules, with the tools a rule may name", tag: "masking" },
  {
    method: "post",
    path: "/api/v1/admin/servers/{serverId}/masking",
    summary: "Add a masking rule (republishes the live bundles serving the server)",
    tag: "masking",
    body: maskingRuleInput,
    created: true,
  },
  { method: "put", path: "/api/v1/admin/servers/{serverId}/masking/{ruleId}", summary: "Replace a masking rule", tag: "masking", body: maskingRuleInput },
  { method: "delete", path: "/api/v1/admin/servers/{serverId}/masking/{ruleId}", summary: "Remove a masking rule", tag: "masking", noContent: true },
  {
    method: "post",
    path: "/api/v1/admin/fleets/{fleetId}/impact",
    summary: "Replay recent decisions against the live bundle and the draft: what would flip (owners, auditors)",
    tag: "bundles",
    body: impactInput,
  },
  // -- brokered per-user upstream OAuth (issue 13, docs/upstreams.md)
  {
    method: "get",
    path: "/api/v1/admin/connections",
    summary: "Upstream connections (brokered per-user OAuth): view=mine (default) the caller's own, view=all those of tenants where it holds vault.write; never a token",
    tag: "connections",
    query: connectionListQuery,
  },
  {
    method: "delete",
    path: "/api/v1/admin/connections/{connectionId}",
    summary: "End a connection: its user disconnects it, or an admin with vault.write in its tenant revokes it; tokens erased, agents drop the user's cached token through the live section at once",
    tag: "connections",
  },
  {
    method: "get",
    path: "/api/v1/admin/connections/requests/{requestId}",
    summary: "A connect request an agent filed for the signed-in user (404 unless the user's SSO identity is the request's user)",
    tag: "connections",
  },
  {
    method: "post",
    path: "/api/v1/admin/connections/requests/{requestId}/start",
    summary: "Start the authorization code flow at the upstream's AS (PKCE S256, state signed for the signed-in user, single use, 10 minutes); answers { authorizationUrl } to open",
    tag: "connections",
  },
  {
    method: "get",
    path: "/api/v1/admin/connections/callback",
    summary:
      "Redirect target of the upstream's AS: checks the state for the signed-in user, exchanges the code, stores the tokens sealed; 303 to /connections (?connected= or ?error=), or to /login and back here when signed out",
    tag: "connections",
    query: callbackQuery,
  },
];

/** The agent API: what data-plane agents call, with an agent key (or, to enroll, an enrollment token). */
export const agentOperations: Operation[] = [
  {
    method: "post",
    path: "/api/v1/agent/enroll",
    summary: "Exchange a one-time enrollment token for an agent key (mda_…), shown once",
    tag: "agent",
    body: enrollInput,
    created: true,
    auth: "none",
    response: "AgentEnrollment",
  },
  {
    method: "get",
    path: "/api/v1/agent/bundle",
    summary:
      'The fleet\'s active signed bundle, with ETag "<sha256>". If-None-Match (or after=) equal to the active one answers 304; with wait=N the request is held until a newer revision is published (200) or N seconds pass (304). 404 until the first publish (with wait: after waiting for it).',
    tag: "agent",
    query: bundleQuery,
    response: "SignedBundle",
    extraResponses: { "304": "The agent holds the active bundle (ETag header set)", "404": "No bundle published for this fleet yet" },
  },
  { method: "post", path: "/api/v1/agent/heartbeat", summary: "Report version, enforced revision, counters and errors", tag: "agent", body: heartbeatInput, noContent: true },
  {
    method: "post",
    path: "/api/v1/agent/decisions",
    summary:
      "A batch of up to 10,000 decisions as application/x-ndjson (Content-Encoding: gzip allowed), one line per decision with a UUIDv7 id (its time is the decision's). Each line is the decision record of lib/enforcement/decision-record.ts (strict: unknown fields are refused; strings bounded and free of NUL and unpaired surrogates; args at most 16 KiB as JSON and 32 levels deep; context is { groups ≤ 100, actors ≤ 20, token { iss, iat, exp }, ip, masked ≤ 100 } or null). Line by line: good lines are stored; a line that does not parse, breaks a bound, has an id more than 5 min in the future or older than the retention, or names a (server, tenant) pair the agent's fleet does not serve (its servers, each with its owning tenant and the tenants it is shared with) is quarantined with its problem, never failing the batch. Only the transport is refused (bad gzip 400, too large 413, wrong type 415). Idempotent by id (and a resent bad line is quarantined once). Answers { accepted, duplicates, quarantined } once committed.",
    tag: "agent",
    body: decisionLine,
  },
  {
    method: "post",
    path: "/api/v1/agent/connections/token",
    summary:
      'SECRET IN THE ANSWER (status "ok"): the calling user\'s upstream access token for a server whose vault entry is oauth_user_brokered, refreshed by the control plane when due (the refresh token never leaves it), with useUntil (at most 10 minutes). status "connect": no usable connection (none, disconnected, revoked, broken); { requestId, url (the control plane\'s /connect/<id> page), expiresAt, reason } for a URL elicitation. Only for a server the agent\'s fleet serves and a tenant it admits. One schema shared with the agent: lib/connections/contract.ts.',
    tag: "agent",
    body: connectionTokenInput,
    extraResponses: {
      "403": "The agent's fleet does not serve this server, or the tenant may not use it",
      "404": "The server has no brokered OAuth entry for this tenant",
      "502": "The upstream's token endpoint failed (not invalid_grant)",
    },
  },
  // -- approvals (issue 16)
  {
    method: "post",
    path: "/api/v1/agent/approvals",
    summary:
      'kind "requested": a tools/call is held for a person (decide() stage "approval"); files the open request for (tenant, callHash), or answers the open one again, with { id, url (the control plane\'s /approvals/<id> page), expiresAt, status }. Arguments are masked by the bundle\'s rules before they are sent. kind "executed": an approved call was let through. Only for a server the agent\'s fleet serves and a tenant the server admits. One schema shared with the agent: lib/enforcement/approval.ts approvalReport.',
    tag: "agent",
    body: approvalReport,
    extraResponses: { "403": "The agent's fleet does not serve this server, or the tenant may not use it", "404": "No such approval request for this agent", "409": "The request is not approved" },
  },
  // -- agent credentials (issue 5)
  {
    method: "post",
    path: "/api/v1/agent/credentials",
    summary:
      "SECRET IN THE ANSWER: the upstream credential for (serverId, tenantId) — the tenant's entry, else the server's shared one — as { entryId, kind, placement, version, secret (string, {username, password} or {clientSecret}), oauth?, ttlSeconds, graceUntil? }. version= asks for a version still in its grace period. Only for an agent whose fleet serves the server and a tenant allowed on it. Every resolution is in the admin trail, without the value. Never log the answer.",
    tag: "agent",
    body: resolveCredentialInput,
    extraResponses: { "403": "The agent's fleet does not serve this server, or the tenant may not use it", "404": "No credential for this server and tenant, or the version asked for is retired" },
  },
];

const jsonSchema = (s: z.ZodType) => z.toJSONSchema(s, { io: "input", unrepresentable: "any", target: "openapi-3.0" });

const errorSchema = {
  type: "object",
  required: ["error"],
  properties: {
    error: {
      type: "object",
      required: ["code", "message"],
      properties: {
        code: { type: "string", example: "validation_failed" },
        message: { type: "string" },
        issues: { type: "array", items: { type: "object", properties: { path: { type: "string" }, message: { type: "string" } } } },
      },
    },
  },
};

const agentSchemas = {
  AgentEnrollment: {
    type: "object",
    required: ["agentId", "fleetId", "agentKey"],
    properties: {
      agentId: { type: "string", example: "agt_0190f0c4…" },
      fleetId: { type: "string", example: "flt_0190f0c4…" },
      agentKey: { type: "string", description: "mda_<agent id hex>.<secret>; store it, it is not shown again" },
    },
  },
  SignedBundle: {
    type: "object",
    required: ["revision", "sha256", "keyId", "signature", "content"],
    properties: {
      revision: { type: "integer" },
      sha256: { type: "string", description: "SHA-256 (hex) of the RFC 8785 canonical JSON of content; also the ETag" },
      keyId: { type: "string", description: "kid of the Ed25519 signing key" },
      signature: { type: "string", description: "Compact JWS (EdDSA) over { sha256, fleetId, revision }" },
      content: { type: "object", description: "Servers, catalogue, Cedar schema, policies and entities" },
    },
  },
};

/** The OpenAPI 3.0 document of the admin and agent APIs, built from the same zod schemas the routes parse with. */
export function openApiDocument(serverUrl: string) {
  const paths: Record<string, Record<string, unknown>> = {};
  const err = (description: string) => ({ description, content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } } });
  for (const op of agentOperations) {
    const queryParams = op.query
      ? Object.entries((jsonSchema(op.query) as { properties?: Record<string, { description?: string }> }).properties ?? {}).map(([name, schema]) => ({
          name,
          in: "query",
          required: false,
          description: schema.description,
          schema,
        }))
      : [];
    const headerParams = op.method === "get" ? [{ name: "If-None-Match", in: "header", required: false, description: "The ETag of the bundle the agent holds", schema: { type: "string" } }] : [];
    const success = op.noContent
      ? { description: "Done" }
      : { description: "OK", content: { "application/json": { schema: op.response ? { $ref: `#/components/schemas/${op.response}` } : { type: "object" } } } };
    (paths[op.path] ??= {})[op.method] = {
      summary: op.summary,
      tags: [op.tag],
      security: op.auth === "none" ? [] : [{ agentKey: [] }],
      parameters: [...queryParams, ...headerParams],
      ...(op.body ? { requestBody: { required: true, content: { "application/json": { schema: jsonSchema(op.body) } } } } : {}),
      responses: {
        [op.noContent ? "204" : op.created ? "201" : "200"]: success,
        ...Object.fromEntries(Object.entries(op.extraResponses ?? {}).map(([code, description]) => [code, code === "304" ? { description } : err(description)])),
        "401": err(op.auth === "none" ? "The enrollment token is invalid, revoked, expired or already used" : 'No valid agent key (WWW-Authenticate: Bearer realm="mandate-agent")'),
        ...(op.body ? { "413": err("Body over 1 MiB"), "422": err("Invalid input; issues name each field") } : {}),
      },
    };
  }
  for (const op of operations) {
    const params = [...op.path.matchAll(/\{(\w+)\}/g)].map((m) => ({ name: m[1], in: "path", required: true, schema: { type: "string" } }));
    const queryParams = op.query
      ? Object.entries((jsonSchema(op.query) as { properties?: Record<string, { description?: string }> }).properties ?? {}).map(([name, schema]) => ({
          name,
          in: "query",
          required: false,
          description: schema.description,
          schema,
        }))
      : [];
    (paths[op.path] ??= {})[op.method] = {
      summary: op.summary,
      tags: [op.tag],
      parameters: [...params, ...queryParams],
      ...(op.body ? { requestBody: { required: true, content: { "application/json": { schema: jsonSchema(op.body) } } } } : {}),
      responses: {
        [op.noContent ? "204" : op.created ? "201" : "200"]: op.noContent ? { description: "Done" } : { description: "OK", content: { "application/json": { schema: { type: "object" } } } },
        "401": err("No valid session or API token"),
        "403": err("Not allowed (or cross-site request refused)"),
        "404": err("Not found, or in a tenant the caller cannot read"),
        ...(op.body ? { "409": err("Conflicts with the current state"), "413": err("Body over 256 KiB"), "422": err("Invalid input; issues name each field") } : {}),
      },
    };
  }
  return {
    openapi: "3.0.3",
    info: {
      title: "Mandate admin and agent API",
      version: "1",
      description:
        "Admin API (/api/v1/admin): manage tenants, MCP servers, tool catalogues, scope mappings and fleets. Authenticate with `Authorization: Bearer mdt_…` (an API token created in Settings), or the dashboard session cookie (same-origin writes only). A user still holding a one-time password may only call GET /api/v1/admin/me and POST /api/v1/admin/me/password (403 otherwise), and API tokens it made do not work.\n\n" +
        "Invitations: `POST /api/auth/invitation` with `{ token, password }` (no authentication: `token` is the `mdi_…` fragment of the invitation link, `password` 12-256 characters) sets the invitee's password once; 200 `{ email }`, or 400 for a link that is invalid, used, replaced, expired or whose user already has a credential or is disabled. Body at most 4 KiB.\n\n" +
        'Agent API (/api/v1/agent): what data-plane agents call. An agent enrolls once with a one-time enrollment token (`mde_…`, minted by an owner) and receives its agent key (`mda_…`), sent as `Authorization: Bearer mda_…` on every other call; a bad key answers 401 with `WWW-Authenticate: Bearer realm="mandate-agent"`. Bodies are at most 1 MiB.',
    },
    servers: [{ url: serverUrl }],
    security: [{ apiToken: [] }],
    components: {
      securitySchemes: {
        apiToken: { type: "http", scheme: "bearer", description: "An API token (mdt_…)" },
        agentKey: { type: "http", scheme: "bearer", description: "An agent key (mda_<agent id hex>.<secret>) from POST /api/v1/agent/enroll; revoked or rotated keys answer 401" },
      },
      schemas: { Error: errorSchema, ...agentSchemas },
    },
    paths,
  };
}
