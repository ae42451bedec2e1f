import { z } from "zod";
import { riskLevels, type PolicyRule } from "@/db/schema";
import { toolNameSchema } from "@/lib/catalog/service";

// Values are embedded in Cedar string literals: no control characters.
// eslint-disable-next-line no-control-regex -- the point is to match control characters
const safeString = z.string().max(500).regex(/^[^\x00-\x1f\x7f]*$/, "must not contain control characters");
const argName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_.-]{0,127}$/, "must be an argument name");
const scalar = z.union([safeString, z.number().int().safe(), z.boolean()]);

export const policyRuleSchema = z
  .object({
    effect: z.enum(["permit", "forbid"]),
    actions: z.array(z.enum(["call_tool", "list_tools"])).min(1, "choose at least one action").default(["call_tool"]),
    tools: z.array(toolNameSchema).max(500).default([]),
    toolFilter: z
      .object({ risk: z.array(z.enum(riskLevels)).optional(), readOnly: z.boolean().optional(), destructive: z.boolean().optional() })
      .optional(),
    principals: z.object({ users: z.array(safeString.min(1)).max(200).default([]), groups: z.array(safeString.min(1)).max(200).default([]) }).prefault({}),
    clients: z.array(safeString.min(1)).max(200).default([]),
    conditions: z
      .array(
        z.object({
          arg: argName,
          op: z.enum(["eq", "neq", "in", "like", "lt", "lte", "gt", "gte", "present", "absent"]),
          value: z.union([scalar, z.array(z.union([safeString, z.number().int().safe()])).max(200)]).optional(),
        }),
      )
      .max(50)
      .default([]),
    approval: z
      .string()
      .trim()
      .max(100)
      .regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]*$/, "must be an approver group name (letters, digits, _ . : -)")
      .optional()
      .describe("For a forbid: ask a member of this approver group instead of denying (@approval)"),
    time: z
      .object({ fromHour: z.number().int().min(0).max(23), toHour: z.number().int().min(1).max(24), days: z.array(z.number().int().min(0).max(6)).max(7).optional() })
      .optional(),
  })
  .superRefine((r, ctx) => {
    r.conditions.forEach((c, i) => {
      const needsValue = !["present", "absent"].includes(c.op);
      if (needsValue && c.value === undefined) ctx.addIssue({ code: "custom", path: ["conditions", i, "value"], message: "is required for this operator" });
      if (c.op === "in" && !Array.isArray(c.value)) ctx.addIssue({ code: "custom", path: ["conditions", i, "value"], message: "must be a list" });
      if (["lt", "lte", "gt", "gte"].includes(c.op) && typeof c.value !== "number") ctx.addIssue({ code: "custom", path: ["conditions", i, "value"], message: "must be a whole number" });
      if (c.op === "like" && typeof c.value !== "string") ctx.addIssue({ code: "custom", path: ["conditions", i, "value"], message: "must be a pattern such as prefix*" });
    });
    if (r.approval && r.effect !== "forbid") ctx.addIssue({ code: "custom", path: ["approval"], message: "only a forbid can ask for approval" });
    if (r.tools.length === 0 && !r.toolFilter) ctx.addIssue({ code: "custom", path: ["tools"], message: "name tools or a tool filter (risk or annotation)" });
  });

const lit = (v: string | number | boolean) => (typeof v === "string" ? JSON.stringify(v) : String(v));
const arg = (name: string) => `context.args[${JSON.stringify(name)}]`;
const has = (name: string) => `context.args has ${JSON.stringify(name)}`;
// A like pattern keeps `*` as the wildcard; quotes and backslashes are escaped.
const likePattern = (p: string) => `"${p.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;

/**
 * Compiles a rule-editor rule for one server into Cedar. Tool names become
 * `Tool::"<server id>/<name>"` entities; every argument test is guarded by
 * `has`, so a missing argument never raises an evaluation error. Argument
 * tests apply to calls only: listing has no arguments, so a permit with
 * argument conditions still lists its tools, and a forbid with argument
 * conditions never hides them (the call itself is still decided on them).
 */
export function compileRule(rule: PolicyRule, serverId: string, meta: { name: string }): string {
  const when: string[] = [];
  if (rule.tools.length) when.push(`resource in [${rule.tools.map((t) => `Tool::${JSON.stringify(`${serverId}/${t}`)}`).join(", ")}]`);
  const f = rule.toolFilter;
  if (f?.risk?.length) when.push(`[${f.risk.map(lit).join(", ")}].contains(resource.risk)`);
  if (f?.readOnly !== undefined) when.push(`resource.readOnly == ${f.readOnly}`);
  if (f?.destructive !== undefined) when.push(`resource.destructive == ${f.destructive}`);
  // Cedar sets are homogeneous: users and groups are tested separately.
  const qualified = rule.principals.users.filter((u) => u.includes("#"));
  const bare = rule.principals.users.filter((u) => !u.includes("#"));
  const who = [
    // A qualified id (`<issuer>#<subject>`) names one user; a bare one names that subject from any
    // issuer the tenant trusts (user ids are namespaced by issuer, so `User::"alice"` matches no token).
    ...(qualified.length ? [`principal in [${qualified.map((u) => `User::${JSON.stringify(u)}`).join(", ")}]`] : []),
    ...(bare.length ? [`[${bare.map(lit).join(", ")}].contains(principal.sub)`] : []),
    ...(rule.principals.groups.length ? [`principal in [${rule.principals.groups.map((g) => `Group::${JSON.stringify(g)}`).join(", ")}]`] : []),
  ];
  if (who.length) when.push(who.length > 1 ? `(${who.join(" || ")})` : who[0]!);
  if (rule.clients.length) when.push(`[${rule.clients.map(lit).join(", ")}].contains(context.client)`);
  // Argument tests: a tools/list has no arguments, so they must not decide whether a tool is listed.
  const argTests: string[] = [];
  for (const c of rule.conditions) {
    const v = c.value;
    switch (c.op) {
      case "present":
        argTests.push(has(c.arg));
        break;
      case "absent":
        argTests.push(`!(${has(c.arg)})`);
        break;
      case "eq":
      case "neq":
        argTests.push(`(${has(c.arg)} && ${arg(c.arg)} ${c.op === "eq" ? "==" : "!="} ${lit(v as string | number | boolean)})`);
        break;
      case "in":
        argTests.push(`(${has(c.arg)} && [${(v as (string | number)[]).map(lit).join(", ")}].contains(${arg(c.arg)}))`);
        break;
      case "like":
        argTests.push(`(${has(c.arg)} && ${arg(c.arg)} like ${likePattern(v as string)})`);
        break;
      default: {
        const op = { lt: "<", lte: "<=", gt: ">", gte: ">=" }[c.op];
        argTests.push(`(${has(c.arg)} && ${arg(c.arg)} ${op} ${lit(v as number)})`);
      }
    }
  }
  if (argTests.length) {
    const all = argTests.length > 1 ? `(${argTests.join(" && ")})` : argTests[0]!;
    if (!rule.actions.includes("list_tools")) when.push(...argTests);
    // A permit lists the tool whatever the arguments; a forbid never hides it on an argument test.
    else if (rule.effect === "permit") when.push(`(action == Action::"list_tools" || ${all})`);
    else when.push(`(action != Action::"list_tools" && ${all})`);
  }
  if (rule.time) {
    const { fromHour, toHour, days } = rule.time;
    when.push(fromHour < toHour ? `(context.time.hour >= ${fromHour} && context.time.hour < ${toHour})` : `(context.time.hour >= ${fromHour} || context.time.hour < ${toHour})`);
    if (days?.length) when.push(`[${days.join(", ")}].contains(context.time.weekday)`);
  }
  const actions = rule.actions.map((a) => `Action::"${a}"`).join(", ");
  // A forbid that asks an approver group instead of denying (lib/enforcement/approval.ts).
  const approval = rule.effect === "forbid" && rule.approval ? `@approval(${JSON.stringify(rule.approval)})\n` : "";
  const head = `@id(${JSON.stringify(meta.name)})\n${approval}${rule.effect} (\n  principal,\n  action in [${actions}],\n  resource\n)`;
  return when.length ? `${head}\nwhen {\n  ${when.join(" &&\n  ")}\n};\n` : `${head};\n`;
}
