import { z } from "zod";
import { riskLevels, type PolicyRule } from "@/db/schema";
import { toolNameSchema } from "@/lib/catalog/service";
import { ENTITY_TYPE, MAX_ENTRY_KEY } from "@/lib/enforcement/catalogue-entry";
import { ACTION_TARGETS, actions as cedarActions } from "@/lib/enforcement/model";

// Values are embedded in Cedar string literals: no control characters.
const safeString = z
  .string()
  .max(500)
  // eslint-disable-next-line no-control-regex -- the point is to match control characters
  .regex(/^[^\x00-\x1f\x7f]*$/, "must not contain control characters");
const argName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_.-]{0,127}$/, "must be an argument name");
const scalar = z.union([safeString, z.number().int().safe(), z.boolean()]);

export const policyRuleSchema = z
  .object({
    effect: z.enum(["permit", "forbid"]),
    actions: z.array(z.enum(cedarActions)).min(1, "choose at least one action").default(["call_tool"]),
    target: z
      .enum(["resource", "resourceTemplate", "prompt"])
      .optional()
      .describe("What the rule is about: tools when absent, else resources (by URI), resource templates (by URI template) or prompts"),
    tools: z.array(safeString.min(1).max(MAX_ENTRY_KEY)).max(500).default([]),
    toolFilter: z.object({ risk: z.array(z.enum(riskLevels)).optional(), readOnly: z.boolean().optional(), destructive: z.boolean().optional() }).optional(),
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
    time: z.object({ fromHour: z.number().int().min(0).max(23), toHour: z.number().int().min(1).max(24), days: z.array(z.number().int().min(0).max(6)).max(7).optional() }).optional(),
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
    if (r.tools.length === 0 && !r.toolFilter)
      ctx.addIssue({ code: "custom", path: ["tools"], message: r.target ? "name at least one, or a risk filter" : "name tools or a tool filter (risk or annotation)" });
    const kind = r.target ?? "tool";
    r.actions.forEach((a, i) => {
      if (!ACTION_TARGETS[a].includes(kind))
        ctx.addIssue({
          code: "custom",
          path: ["actions", i],
          message: `${a} does not apply to ${kind === "tool" ? "tools" : kind === "resource" ? "resources" : kind === "resourceTemplate" ? "resource templates" : "prompts"}`,
        });
    });
    if (kind === "tool")
      r.tools.forEach((t, i) => {
        const ok = toolNameSchema.safeParse(t);
        if (!ok.success) ctx.addIssue({ code: "custom", path: ["tools", i], message: ok.error.issues[0]?.message ?? "is not a tool name" });
      });
    if (r.approval && kind !== "tool") ctx.addIssue({ code: "custom", path: ["approval"], message: "approval applies to tool calls only" });
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
  const type = ENTITY_TYPE[rule.target ?? "tool"];
  if (rule.tools.length) when.push(`resource in [${rule.tools.map((t) => `${type}::${JSON.stringify(`${serverId}/${t}`)}`).join(", ")}]`);
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
    // Listing has no arguments (list_tools, list_resources, list_resource_templates, list_prompts).
    const lists = rule.actions.filter((a) => a.startsWith("list_"));
    const isList = lists.length === 1 ? `action == Action::"${lists[0]}"` : `action in [${lists.map((a) => `Action::"${a}"`).join(", ")}]`;
    if (!lists.length) when.push(...argTests);
    // A permit lists the entry whatever the arguments; a forbid never hides it on an argument test.
    else if (rule.effect === "permit") when.push(`(${isList} || ${all})`);
    else when.push(`(${lists.length === 1 ? `action != Action::"${lists[0]}"` : `!(${isList})`} && ${all})`);
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
