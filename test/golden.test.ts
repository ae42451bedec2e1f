import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import type { PolicyRule } from "@/db/schema";
import { compileBundle, type RegistrySnapshot } from "@/lib/bundles/compile";
import { PolicyEngine, type DecisionRequest } from "@/lib/enforcement/engine";
import { compileRule } from "@/lib/policy/rule";

interface GoldenFile {
  description: string;
  snapshot: Omit<RegistrySnapshot, "policies"> & { policies: (RegistrySnapshot["policies"][number] & { rule?: PolicyRule })[] };
  cases: { name: string; request: DecisionRequest & { time?: string }; expected: "allow" | "deny"; determining?: string[] }[];
}

const dir = path.join(__dirname, "golden");
const files = readdirSync(dir).filter((f) => f.endsWith(".json"));

describe.each(files)("golden %s", (file) => {
  const golden = JSON.parse(readFileSync(path.join(dir, file), "utf8")) as GoldenFile;
  // Rule-editor policies are stored as rules; compile them as the service does on save.
  const snapshot: RegistrySnapshot = {
    ...golden.snapshot,
    policies: golden.snapshot.policies.map(({ rule, ...p }) => ({ ...p, cedar: rule ? compileRule(rule, p.serverId, { name: p.name }) : p.cedar })),
  };
  const compiled = compileBundle(snapshot, { fleetId: "flt_golden", revision: 1, parentRevision: null, createdAt: "2026-01-01T00:00:00.000Z" });

  it("compiles without issues", () => {
    expect(compiled.issues).toEqual([]);
  });

  const engine = new PolicyEngine(compiled.content);
  it.each(golden.cases.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    const result = engine.decide({ ...c.request, time: c.request.time ? new Date(c.request.time) : new Date("2026-11-25T12:00:00Z") });
    expect(result.decision, result.reason).toBe(c.expected);
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
