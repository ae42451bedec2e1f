import "server-only";
import type { FormattingAnswer, PolicySetTextToPartsAnswer, PolicyToJsonAnswer, ValidationAnswer } from "@cedar-policy/cedar-wasm/nodejs";
import type { PolicyJson, SchemaJson } from "@/lib/enforcement/cedar";
import { formatAnswer, formattingCall, issue, splitAnswer, validationCall, validationIssues, type CedarIssue } from "./cedar-tools";
import { CedarIsolationError, runIsolated } from "./cedar-worker";

/** What the isolated check of admin-supplied Cedar found: parse problems, or validation problems and each policy's JSON. */
export type CedarAnalysis = { ok: false; issues: CedarIssue[] } | { ok: true; issues: CedarIssue[]; policies: PolicyJson[]; formatted: string | null };

/**
 * Parses, validates (and formats) Cedar text written by an admin, in the
 * isolated worker (`./cedar-worker`): a hostile text can make that worker
 * fail, never the engine that decides and compiles. A job that traps or runs
 * over its budget is refused as one issue.
 */
export async function analyzeCedar(text: string, schema: SchemaJson<string>, opts: { format?: boolean } = {}): Promise<CedarAnalysis> {
  try {
    const [parts] = await runIsolated([{ fn: "policySetTextToParts", args: [text] }]);
    const split = splitAnswer(text, parts as PolicySetTextToPartsAnswer);
    if (!split.ok) return split;
    const res = await runIsolated([
      { fn: "validate", args: [validationCall(schema, text)] },
      ...split.policies.map((p) => ({ fn: "policyToJson" as const, args: [p] })),
      ...(opts.format ? [{ fn: "formatPolicies" as const, args: [formattingCall(text)] }] : []),
    ]);
    const issues = validationIssues(text, res[0] as ValidationAnswer);
    const policies: PolicyJson[] = [];
    for (let i = 0; i < split.policies.length; i++) {
      const j = res[1 + i] as PolicyToJsonAnswer;
      if (j.type !== "success") return { ok: false, issues: [...issues, ...j.errors.map((e) => issue(split.policies[i]!, e))] };
      policies.push(j.json);
    }
    const f = opts.format && !issues.length ? formatAnswer(text, res[res.length - 1] as FormattingAnswer) : null;
    return { ok: true, issues, policies, formatted: f?.ok ? f.text : null };
  } catch (err) {
    if (err instanceof CedarIsolationError) return { ok: false, issues: [{ message: err.message, help: "simplify the policy: fewer nested brackets and shorter chains of conditions" }] };
    throw err;
  }
}
