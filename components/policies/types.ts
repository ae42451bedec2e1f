// Response shapes of the policy admin API as these pages read them (types only: nothing server-side is bundled).
import type { PolicyRule, PolicyTestRequest, RiskLevel } from "@/db/schema";
import type { TestResult } from "@/lib/bundles/compile";
import type { ArgType } from "@/lib/enforcement/model";
import type { CedarIssue } from "@/lib/policy/cedar-tools";
import type { getPolicy, listTests } from "@/lib/policy/service";

export type { PolicyRule, PolicyTestRequest, RiskLevel, ArgType, CedarIssue, TestResult };

export type PublicPolicy = Awaited<ReturnType<typeof getPolicy>>;
export type PublicPolicyTest = Awaited<ReturnType<typeof listTests>>["items"][number];

/** GET /servers/{id}/cedar-schema */
export interface CedarSchemaInfo {
  text: string;
  arguments: Record<string, ArgType>;
  conflicts: string[];
  /** Every catalogue entry (`kind` tool, resource: name = URI, resourceTemplate: name = URI template, or prompt) with the argument names of its approved definition. */
  tools: { kind?: "tool" | "resource" | "resourceTemplate" | "prompt"; name: string; approved: boolean; blocked: boolean; arguments?: string[] }[];
  /** The schema as Cedar's JSON schema format (entity types, actions, context). */
  schema?: unknown;
}

/** POST /policies/check */
export interface CheckResult {
  cedar: string;
  issues: CedarIssue[];
  formatted: string | null;
}

/** A compile problem of the draft, in a named policy when it is in one. */
export interface DraftIssue extends CedarIssue {
  policy?: { id: string; name: string };
}

/** POST /policy-tests/run */
export interface RunResult {
  issues: DraftIssue[];
  warnings: string[];
  tests: TestResult[];
  passed: number;
  failed: number;
}

export interface DeterminingPolicy {
  id: string;
  name: string;
  kind: string;
  cedar: string;
}

/** POST /simulate: a decision, or (for a draft that does not compile) decision null with the issues. */
export interface SimulateResult {
  decision: "allow" | "deny" | null;
  reason?: string;
  determining?: string[];
  errors?: string[];
  determiningPolicies?: DeterminingPolicy[];
  erroredPolicies?: DeterminingPolicy[];
  /** Which check of decide() answered (lib/enforcement/decide.ts). */
  stage?: "passthrough" | "list" | "revoked" | "server" | "method" | "client" | "catalogue" | "drift" | "arguments" | "policy" | "error";
  /** Scopes an agent would ask for (403 insufficient_scope). */
  stepUpScopes?: string[];
  issues: DraftIssue[];
}

export interface FleetSummary {
  id: string;
  name: string;
  activeRevision: number | null;
  serverIds: string[];
}

export interface BundleSummary {
  revision: number;
  note?: string | null;
  createdAt: string;
  createdBy?: string | null;
  rolledBackFrom?: number | null;
}

export const riskLevels: RiskLevel[] = ["unrated", "low", "medium", "high", "critical"];
