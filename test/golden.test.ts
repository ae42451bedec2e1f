import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import type { PolicyRule } from "@/db/schema";
import { compileBundle, type RegistrySnapshot } from "@/lib/bundles/compile";
import { decide, decisionView, type DecideRequest, type DecisionStage } from "@/lib/enforcement/decide";
import type { DecisionRequest } from "@/lib/enforcement/engine";
import { compileRule } from "@/lib/policy/rule";

/**
 * A case's request: the engine's shape (action, tenant, user, …: a Cedar-only
 * case) or `method` with a `principal` (decide()'s own shape, for the checks
 * that are not Cedar: the method allow-list, revocation, client approval,
 * drift, step-up). Both run through decide(), as the agent, the simulator and
 * impact replay do.
 */
type GoldenRequest =
  | (DecisionRequest & { time?: string })
  | (Omit<DecideRequest, "time" | "principal"> & { time?: string; principal: Partial<DecideRequest["principal"]> & { tenantId: string; user: string }; issuedAt?: string });

interface GoldenCase {
  name: string;
  request: GoldenRequest;
  /** `serverId/tool` known to have changed upstream. */
  drifted?: string[];
  expected: "allow" | "deny";
  stage?: DecisionStage;
  stepUpScopes?: string[];
  reason?: string;
  determining?: string[];
}

interface GoldenFile {
  description: string;
  snapshot: Omit<RegistrySnapshot, "policies" | "live"> & { policies: (RegistrySnapshot["policies"][number] & { rule?: PolicyRule })[]; live?: Partial<NonNullable<RegistrySnapshot["live"]>> };
  cases: GoldenCase[];
}

const DEFAULT_TIME = "2026-11-25T12:00:00Z";

/** The decide() request for a golden case. */
function toDecideRequest(r: GoldenRequest): DecideRequest {
  const time = new Date(r.time ?? DEFAULT_TIME);
  if ("method" in r) {
    const p = r.principal;
    const iat = r.issuedAt ? Math.floor(Date.parse(r.issuedAt) / 1000) : Math.floor(time.getTime() / 1000) - 60;
    return { ...r, time, principal: { issuer: "https://as.example.com", client: "", scopes: [], groups: [], actors: [], iat, exp: iat + 3600, ...p } };
  }
  return {
    method: r.action === "list_tools" ? "tools/list" : "tools/call",
    serverId: r.serverId,
    tool: r.tool,
    principal: {
      issuer: r.token?.iss ?? "",
      tenantId: r.tenantId,
      user: r.user,
      client: r.client,
      scopes: r.scopes,
      groups: r.groups ?? [],
      actors: r.delegation?.actors ?? [],
      iat: r.token?.iat ?? 0,
      exp: r.token?.exp ?? 0,
    },
    args: r.args,
    time,
    ...(r.ip ? { ip: r.ip } : {}),
  };
}

const dir = path.join(__dirname, "golden");
const files = readdirSync(dir).filter((f) => f.endsWith(".json"));

describe.each(files)("golden %s", (file) => {
  const golden = JSON.parse(readFileSync(path.join(dir, file), "utf8")) as GoldenFile;
  // Rule-editor policies are stored as rules; compile them as the service does on save.
  const snapshot: RegistrySnapshot = {
    ...golden.snapshot,
    policies: golden.snapshot.policies.map(({ rule, ...p }) => ({ ...p, cedar: rule ? compileRule(rule, p.serverId, { name: p.name }) : p.cedar })),
    live: { revocations: [], approvedClients: [], clientApproval: [], credentials: [], masking: [], ...golden.snapshot.live },
  };
  const compiled = compileBundle(snapshot, { fleetId: "flt_golden", revision: 1, parentRevision: null, createdAt: "2026-01-01T00:00:00.000Z" });

  it("compiles without issues", () => {
    expect(compiled.issues).toEqual([]);
  });

  const view = decisionView(compiled.content);
  it.each(golden.cases.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    const result = decide(view, toDecideRequest(c.request), { drifted: new Set(c.drifted ?? []) });
    expect(result.decision, result.reason).toBe(c.expected);
    if (c.stage) expect(result.stage, result.reason).toBe(c.stage);
    if (c.stepUpScopes) expect(result.stepUpScopes).toEqual(c.stepUpScopes);
    if (c.reason) expect(result.reason).toBe(c.reason);
    if (process.env.GOLDEN_UPDATE) {
      c.determining = result.determining;
    } else if (c.determining) {
      expect([...result.determining].sort()).toEqual([...c.determining].sort());
    }
  });

  if (process.env.GOLDEN_UPDATE) {
    it("writes back", () => writeFileSync(path.join(dir, file), JSON.stringify(golden, null, 1)));
  }
});
