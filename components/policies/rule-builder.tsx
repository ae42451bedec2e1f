"use client";

import { useId, useState, type ReactNode } from "react";
import { Checkbox } from "@/components/servers/fields";
import { Button, TextField, cx } from "@/components/ui";
import { riskLevels, type ArgType, type CedarSchemaInfo, type PolicyRule, type RiskLevel } from "./types";

type Op = PolicyRule["conditions"][number]["op"];
type Action = PolicyRule["actions"][number];
type Target = "tool" | "resource" | "resourceTemplate" | "prompt";

/** What a rule can be about, the actions that apply to each, and the words for them. */
const TARGETS: { value: Target; label: string; plural: string; actions: { action: Action; label: string }[] }[] = [
  {
    value: "tool",
    label: "Tools",
    plural: "tools",
    actions: [
      { action: "call_tool", label: "Call tool" },
      { action: "list_tools", label: "List tools" },
    ],
  },
  {
    value: "resource",
    label: "Resources",
    plural: "resources",
    actions: [
      { action: "read_resource", label: "Read (and subscribe)" },
      { action: "list_resources", label: "List resources" },
    ],
  },
  {
    value: "resourceTemplate",
    label: "Resource templates",
    plural: "resource templates",
    actions: [
      { action: "read_resource", label: "Read URIs through it" },
      { action: "list_resource_templates", label: "List templates" },
      { action: "complete", label: "Complete arguments" },
    ],
  },
  {
    value: "prompt",
    label: "Prompts",
    plural: "prompts",
    actions: [
      { action: "get_prompt", label: "Get prompt" },
      { action: "list_prompts", label: "List prompts" },
      { action: "complete", label: "Complete arguments" },
    ],
  },
];
const targetOf = (t: Target) => TARGETS.find((x) => x.value === t)!;

export interface ConditionDraft {
  key: number;
  arg: string;
  op: Op;
  value: string;
}

/** The rule form as typed: lists as comma-separated text, values as text. */
export interface RuleDraft {
  effect: "permit" | "forbid";
  /** What the rule is about (tools unless chosen otherwise). */
  target: Target;
  actions: Action[];
  tools: string[];
  risk: RiskLevel[];
  readOnly: "" | "true" | "false";
  destructive: "" | "true" | "false";
  users: string;
  groups: string;
  clients: string;
  conditions: ConditionDraft[];
  timeOn: boolean;
  fromHour: number;
  toHour: number;
  days: number[];
  /** For a forbid: the approver group to ask instead of denying ("" for none). */
  approval: string;
}

export const opLabels: Record<Op, string> = {
  eq: "equals",
  neq: "does not equal",
  in: "is one of",
  like: "matches pattern",
  lt: "is less than",
  lte: "is at most",
  gt: "is greater than",
  gte: "is at least",
  present: "is present",
  absent: "is absent",
};
const allOps = Object.keys(opLabels) as Op[];
const opsByType: Record<ArgType, Op[]> = {
  String: ["eq", "neq", "in", "like", "present", "absent"],
  Long: ["eq", "neq", "in", "lt", "lte", "gt", "gte", "present", "absent"],
  Bool: ["eq", "neq", "present", "absent"],
  SetString: ["present", "absent"],
};
const numericOps: Op[] = ["lt", "lte", "gt", "gte"];
const typeLabel: Record<ArgType, string> = { String: "string", Long: "number", Bool: "true/false", SetString: "list of strings" };
export const weekdays = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const hour = (h: number) => `${String(h).padStart(2, "0")}:00`;

export const splitList = (s: string) =>
  s
    .split(",")
    .map((x) => x.trim())
    .filter(Boolean);

export function emptyRuleDraft(): RuleDraft {
  return {
    effect: "permit",
    target: "tool",
    actions: ["call_tool"],
    tools: [],
    risk: [],
    readOnly: "",
    destructive: "",
    users: "",
    groups: "",
    clients: "",
    conditions: [],
    timeOn: false,
    fromHour: 9,
    toHour: 17,
    days: [1, 2, 3, 4, 5],
    approval: "",
  };
}

export function draftFromRule(r: PolicyRule): RuleDraft {
  const tri = (b: boolean | undefined) => (b === undefined ? "" : b ? "true" : "false");
  return {
    effect: r.effect,
    target: r.target ?? "tool",
    actions: r.actions,
    tools: r.tools,
    risk: r.toolFilter?.risk ?? [],
    readOnly: tri(r.toolFilter?.readOnly),
    destructive: tri(r.toolFilter?.destructive),
    users: r.principals.users.join(", "),
    groups: r.principals.groups.join(", "),
    clients: r.clients.join(", "),
    conditions: r.conditions.map((c, i) => ({ key: i + 1, arg: c.arg, op: c.op, value: c.value === undefined ? "" : Array.isArray(c.value) ? c.value.join(", ") : String(c.value) })),
    timeOn: Boolean(r.time),
    fromHour: r.time?.fromHour ?? 9,
    toHour: r.time?.toHour ?? 17,
    days: r.time?.days ?? [],
    approval: r.approval ?? "",
  };
}

const isInt = (s: string) => /^-?\d+$/.test(s.trim());

/** Converts a condition's text to the value the API takes, by operator and argument type. */
function conditionValue(c: ConditionDraft, type: ArgType | undefined): PolicyRule["conditions"][number]["value"] {
  if (c.op === "present" || c.op === "absent") return undefined;
  if (c.op === "in") return splitList(c.value).map((v) => (type === "Long" && isInt(v) ? Number(v) : v));
  // Left as text when not a whole number: the API then says "must be a whole number".
  if (numericOps.includes(c.op)) return c.value.trim() === "" ? undefined : isInt(c.value) ? Number(c.value) : c.value;
  if (c.op === "like") return c.value;
  if (type === "Bool") return c.value === "true" ? true : c.value === "false" ? false : undefined;
  if (type === "Long" && isInt(c.value)) return Number(c.value);
  return c.value;
}

export function ruleFromDraft(d: RuleDraft, args: Record<string, ArgType>): PolicyRule {
  const filter: NonNullable<PolicyRule["toolFilter"]> = {};
  if (d.risk.length) filter.risk = riskLevels.filter((r) => d.risk.includes(r));
  if (d.readOnly) filter.readOnly = d.readOnly === "true";
  if (d.destructive) filter.destructive = d.destructive === "true";
  return {
    effect: d.effect,
    ...(d.target !== "tool" ? { target: d.target } : {}),
    actions: targetOf(d.target)
      .actions.map((a) => a.action)
      .filter((a) => d.actions.includes(a)),
    tools: d.tools,
    ...(Object.keys(filter).length ? { toolFilter: filter } : {}),
    principals: { users: splitList(d.users), groups: splitList(d.groups) },
    clients: splitList(d.clients),
    conditions: d.conditions.map((c) => {
      const value = conditionValue(c, args[c.arg]);
      return { arg: c.arg, op: c.op, ...(value !== undefined ? { value } : {}) };
    }),
    ...(d.timeOn ? { time: { fromHour: d.fromHour, toHour: d.toHour, ...(d.days.length ? { days: [...d.days].sort() } : {}) } } : {}),
    ...(d.effect === "forbid" && d.approval.trim() ? { approval: d.approval.trim() } : {}),
  };
}

const smallControl =
  "block w-full rounded-md border-0 px-2 py-1.5 text-sm text-slate-900 ring-1 ring-inset focus:ring-2 focus:ring-inset focus:ring-indigo-600 disabled:bg-slate-50 disabled:text-slate-500";

function Section({ legend, hint, error, children }: { legend: string; hint?: ReactNode; error?: string; children: ReactNode }) {
  const id = useId();
  return (
    <fieldset className="space-y-2" aria-describedby={error ? `${id}-err` : hint ? `${id}-hint` : undefined}>
      <legend className="text-sm font-semibold text-slate-900">{legend}</legend>
      {hint ? (
        <p id={`${id}-hint`} className="-mt-1 text-xs text-slate-500">
          {hint}
        </p>
      ) : null}
      {children}
      {error ? (
        <p id={`${id}-err`} role="alert" className="text-xs text-rose-600">
          {error}
        </p>
      ) : null}
    </fieldset>
  );
}

/** Approved tools as a filterable checkbox list; selected tools that are no longer approved stay visible. */
function ToolPicker({ selected, tools, onChange }: { selected: string[]; tools: CedarSchemaInfo["tools"]; onChange: (names: string[]) => void }) {
  const [filter, setFilter] = useState("");
  const filterId = useId();
  const usable = tools.filter((t) => t.approved && !t.blocked).map((t) => t.name);
  const stale = selected.filter((n) => !usable.includes(n));
  const names = [...usable, ...stale].filter((n) => !filter || n.toLowerCase().includes(filter.toLowerCase()));
  const state = (n: string) => {
    const t = tools.find((x) => x.name === n);
    return !t ? "not in the catalogue" : t.blocked ? "blocked" : !t.approved ? "not approved" : null;
  };
  const toggle = (n: string, on: boolean) => onChange(on ? [...selected, n] : selected.filter((x) => x !== n));
  if (!usable.length && !stale.length) {
    return (
      <p className="rounded-md bg-amber-50 px-3 py-2 text-sm text-amber-900 ring-1 ring-inset ring-amber-200">
        This server has no approved tool yet. Approve tools on the server’s Tools tab, or match tools by the filter below.
      </p>
    );
  }
  return (
    <div className="space-y-2">
      <div className="flex items-center gap-2">
        {usable.length > 8 ? (
          <>
            <label htmlFor={filterId} className="sr-only">
              Filter tools
            </label>
            <input id={filterId} type="search" placeholder="Filter tools" value={filter} onChange={(e) => setFilter(e.target.value)} className={cx(smallControl, "max-w-56 ring-slate-300")} />
          </>
        ) : null}
        <span className="text-xs text-slate-500">
          {selected.length} of {usable.length} selected
        </span>
        {selected.length ? (
          <Button variant="ghost" className="py-0.5 text-xs" onClick={() => onChange([])}>
            Clear
          </Button>
        ) : null}
      </div>
      <div className="grid max-h-56 grid-cols-1 gap-x-4 gap-y-1 overflow-y-auto rounded-md p-2 ring-1 ring-inset ring-slate-200 sm:grid-cols-2">
        {names.map((n) => {
          const s = state(n);
          return (
            <Checkbox
              key={n}
              checked={selected.includes(n)}
              onChange={(v) => toggle(n, v)}
              label={
                <span className="font-mono text-xs">
                  {n}
                  {s ? <span className="ml-1 font-sans text-rose-700">({s})</span> : null}
                </span>
              }
            />
          );
        })}
        {!names.length ? <p className="text-xs text-slate-500">No tool matches “{filter}”.</p> : null}
      </div>
    </div>
  );
}

function ConditionRow({
  c,
  n,
  args,
  onChange,
  onRemove,
  error,
}: {
  c: ConditionDraft;
  n: number;
  args: Record<string, ArgType>;
  onChange: (c: ConditionDraft) => void;
  onRemove: () => void;
  error?: string;
}) {
  const id = useId();
  const type = args[c.arg] as ArgType | undefined;
  const ops = type ? opsByType[type] : allOps;
  const names = Object.keys(args).sort();
  const ring = error ? "ring-rose-400" : "ring-slate-300";
  const noValue = c.op === "present" || c.op === "absent";
  return (
    <li className="rounded-md bg-slate-50 p-2 ring-1 ring-inset ring-slate-200" aria-label={`Condition ${n}`}>
      <div className="grid grid-cols-1 items-end gap-2 sm:grid-cols-[minmax(0,1.3fr)_minmax(0,1fr)_minmax(0,1.3fr)_auto]">
        <div>
          <label htmlFor={`${id}-arg`} className="block text-xs font-medium text-slate-600">
            Argument {n}
          </label>
          <select
            id={`${id}-arg`}
            value={c.arg}
            onChange={(e) => {
              const t = args[e.target.value];
              const allowed = t ? opsByType[t] : allOps;
              onChange({ ...c, arg: e.target.value, op: allowed.includes(c.op) ? c.op : allowed[0]!, value: t === "Bool" && !["true", "false"].includes(c.value) ? "true" : c.value });
            }}
            className={cx(smallControl, ring)}
          >
            <option value="">Choose an argument</option>
            {names.map((a) => (
              <option key={a} value={a}>
                {a} ({typeLabel[args[a]!]})
              </option>
            ))}
            {c.arg && !type ? <option value={c.arg}>{c.arg} (not an argument of any approved tool)</option> : null}
          </select>
        </div>
        <div>
          <label htmlFor={`${id}-op`} className="block text-xs font-medium text-slate-600">
            Operator
          </label>
          <select id={`${id}-op`} value={c.op} onChange={(e) => onChange({ ...c, op: e.target.value as Op })} className={cx(smallControl, ring)}>
            {ops.map((o) => (
              <option key={o} value={o}>
                {opLabels[o]}
              </option>
            ))}
          </select>
        </div>
        <div>
          {noValue ? (
            <p className="py-1.5 text-xs text-slate-500">No value needed</p>
          ) : (
            <>
              <label htmlFor={`${id}-value`} className="block text-xs font-medium text-slate-600">
                {c.op === "in" ? "Values (comma-separated)" : c.op === "like" ? "Pattern (* matches anything)" : "Value"}
              </label>
              {type === "Bool" && (c.op === "eq" || c.op === "neq") ? (
                <select id={`${id}-value`} value={c.value} onChange={(e) => onChange({ ...c, value: e.target.value })} className={cx(smallControl, ring)}>
                  <option value="true">true</option>
                  <option value="false">false</option>
                </select>
              ) : (
                <input
                  id={`${id}-value`}
                  type={numericOps.includes(c.op) || (type === "Long" && c.op !== "in") ? "number" : "text"}
                  step={1}
                  inputMode={numericOps.includes(c.op) || type === "Long" ? "numeric" : undefined}
                  value={c.value}
                  placeholder={c.op === "in" ? (type === "Long" ? "1, 2, 3" : "alpha, beta") : c.op === "like" ? "prefix*" : undefined}
                  onChange={(e) => onChange({ ...c, value: e.target.value })}
                  aria-invalid={Boolean(error)}
                  aria-describedby={error ? `${id}-err` : undefined}
                  className={cx(smallControl, ring, "font-mono")}
                />
              )}
            </>
          )}
        </div>
        <Button variant="ghost" onClick={onRemove} aria-label={`Remove condition ${n}`} className="text-rose-700">
          Remove
        </Button>
      </div>
      {error ? (
        <p id={`${id}-err`} role="alert" className="mt-1 text-xs text-rose-600">
          {error}
        </p>
      ) : null}
    </li>
  );
}

/**
 * The arguments a condition can test for a target: the tools' typed arguments;
 * a prompt's declared arguments and a template's URI variables (strings).
 */
function argumentsFor(target: Target, schema: CedarSchemaInfo | undefined): Record<string, ArgType> {
  if (!schema) return {};
  if (target === "tool") return schema.arguments;
  const out: Record<string, ArgType> = {};
  for (const t of schema.tools) {
    if ((t.kind ?? "tool") !== target || !t.approved || t.blocked) continue;
    const names =
      target === "prompt"
        ? (t.arguments ?? [])
        : target === "resourceTemplate"
          ? [...t.name.matchAll(/\{[+#./;?&]?([^}]+)\}/g)].flatMap((m) => m[1]!.split(",").map((v) => v.replace(/(\*|:\d+)$/, "")))
          : [];
    for (const n of names) if (/^[A-Za-z_][A-Za-z0-9_.-]{0,127}$/.test(n)) out[n] = "String";
  }
  return out;
}

/**
 * The rule builder: who (users, groups, clients) may or may not do what
 * (actions on tools picked by name or by risk and annotations), under which
 * argument conditions and in which time window.
 */
export function RuleBuilder({
  draft,
  onChange,
  schema,
  disabled,
  err,
}: {
  draft: RuleDraft;
  onChange: (d: RuleDraft) => void;
  schema: CedarSchemaInfo | undefined;
  disabled?: boolean;
  /** The first problem reported for an API path (e.g. "rule.tools"). */
  err: (path: string) => string | undefined;
}) {
  const set = <K extends keyof RuleDraft>(k: K, v: RuleDraft[K]) => onChange({ ...draft, [k]: v });
  const args = argumentsFor(draft.target, schema);
  const effectName = useId();
  const tri = (label: string, value: RuleDraft["readOnly"], on: (v: RuleDraft["readOnly"]) => void, yes: string, no: string) => {
    const id = `${effectName}-${label}`;
    return (
      <div>
        <label htmlFor={id} className="block text-xs font-medium text-slate-600">
          {label}
        </label>
        <select id={id} value={value} onChange={(e) => on(e.target.value as RuleDraft["readOnly"])} className={cx(smallControl, "ring-slate-300")}>
          <option value="">Any</option>
          <option value="true">{yes}</option>
          <option value="false">{no}</option>
        </select>
      </div>
    );
  };

  return (
    <fieldset disabled={disabled} className="space-y-5">
      <legend className="sr-only">Rule</legend>
      <Section legend="Effect" hint="A forbid wins over any permit. Without a permit, a call is denied." error={err("rule.effect")}>
        <div className="flex gap-4">
          {(["permit", "forbid"] as const).map((e) => (
            <label key={e} className="flex items-center gap-2 text-sm font-medium text-slate-700">
              <input type="radio" name={effectName} value={e} checked={draft.effect === e} onChange={() => set("effect", e)} className="h-4 w-4 border-slate-300 text-indigo-600" />
              {e === "permit" ? "Permit (allow)" : "Forbid (deny)"}
            </label>
          ))}
        </div>
      </Section>

      {/* Approval (issue 16): a forbid may hold matching calls for a person instead of denying them. */}
      {draft.effect === "forbid" && draft.target === "tool" ? (
        <Section
          legend="Require approval (optional)"
          hint="Instead of denying, hold matching calls until a member of this approver group approves them (Approvals page). Another forbid still denies."
          error={err("rule.approval")}
        >
          <TextField label="Approver group" value={draft.approval} maxLength={100} placeholder="finance-approvers" onChange={(e) => set("approval", e.target.value)} />
        </Section>
      ) : null}

      <Section
        legend="Applies to"
        hint="Resources are named by URI, templates by URI template; a URI that is no approved resource is read through the approved templates it matches."
        error={err("rule.target")}
      >
        <select
          aria-label="Applies to"
          value={draft.target}
          onChange={(e) => {
            const t = targetOf(e.target.value as Target);
            // Names and actions belong to one kind: switching starts from that kind's first action.
            onChange({ ...draft, target: t.value, tools: [], actions: [t.actions[0]!.action], readOnly: "", destructive: "", approval: t.value === "tool" ? draft.approval : "" });
          }}
          className={cx(smallControl, "max-w-xs ring-slate-300")}
        >
          {TARGETS.map((t) => (
            <option key={t.value} value={t.value}>
              {t.label}
            </option>
          ))}
        </select>
      </Section>

      <Section legend="Actions" error={err("rule.actions")}>
        <div className="flex flex-wrap gap-x-6 gap-y-1">
          {targetOf(draft.target).actions.map(({ action, label }) => (
            <Checkbox
              key={action}
              label={`${label} (${action})`}
              checked={draft.actions.includes(action)}
              onChange={(v) => set("actions", v ? [...draft.actions, action] : draft.actions.filter((a) => a !== action))}
            />
          ))}
        </div>
      </Section>

      <Section
        legend={targetOf(draft.target).label}
        hint={`Pick ${targetOf(draft.target).plural} by name, or leave none selected and match them by the filter below (or both: each must then match both).`}
        error={err("rule.tools")}
      >
        {schema ? (
          <ToolPicker selected={draft.tools} tools={schema.tools.filter((t) => (t.kind ?? "tool") === draft.target)} onChange={(t) => set("tools", t)} />
        ) : (
          <p className="text-sm text-slate-500">Loading the server’s catalogue…</p>
        )}
      </Section>

      <Section legend="Tool filter (optional)" hint="Risk is set by your reviewers; read-only and destructive are hints the server declares about its own tools." error={err("rule.toolFilter")}>
        <div className="space-y-2">
          <div>
            <span className="block text-xs font-medium text-slate-600" id={`${effectName}-risk`}>
              Risk
            </span>
            <div role="group" aria-labelledby={`${effectName}-risk`} className="mt-1 flex flex-wrap gap-x-4 gap-y-1">
              {riskLevels.map((r) => (
                <Checkbox key={r} label={r} checked={draft.risk.includes(r)} onChange={(v) => set("risk", v ? [...draft.risk, r] : draft.risk.filter((x) => x !== r))} />
              ))}
            </div>
          </div>
          {draft.target === "tool" ? (
            <div className="grid grid-cols-1 gap-3 sm:grid-cols-2">
              {tri("Read-only", draft.readOnly, (v) => set("readOnly", v), "Read-only tools only", "Tools that are not read-only")}
              {tri("Destructive", draft.destructive, (v) => set("destructive", v), "Destructive tools only", "Tools that are not destructive")}
            </div>
          ) : null}
        </div>
      </Section>

      <Section legend="Who" hint="Leave empty to match everyone in the tenant. Users are token subjects (sub); groups come from the token’s groups claim.">
        <div className="grid grid-cols-1 gap-3 sm:grid-cols-2">
          <TextField label="Users (comma-separated)" value={draft.users} onChange={(e) => set("users", e.target.value)} placeholder="alice, bob@example.com" error={err("rule.principals.users")} />
          <TextField label="Groups (comma-separated)" value={draft.groups} onChange={(e) => set("groups", e.target.value)} placeholder="support, oncall" error={err("rule.principals.groups")} />
        </div>
        <TextField
          label="Clients (comma-separated)"
          value={draft.clients}
          onChange={(e) => set("clients", e.target.value)}
          placeholder="claude-desktop, ci-agent"
          hint="OAuth client ids; leave empty for any client."
          error={err("rule.clients")}
        />
      </Section>

      <Section
        legend="Argument conditions"
        hint={
          <>
            All conditions must hold. A missing argument never matches a comparison (use “is absent” to match it).
            {schema?.conflicts.length ? ` Not usable here (different types across tools): ${schema.conflicts.join(", ")}.` : ""}
          </>
        }
        error={draft.conditions.length ? undefined : err("rule.conditions")}
      >
        {draft.conditions.length ? (
          <ol className="space-y-2">
            {draft.conditions.map((c, i) => (
              <ConditionRow
                key={c.key}
                c={c}
                n={i + 1}
                args={args}
                error={err(`rule.conditions.${i}`)}
                onChange={(next) =>
                  set(
                    "conditions",
                    draft.conditions.map((x) => (x.key === c.key ? next : x)),
                  )
                }
                onRemove={() =>
                  set(
                    "conditions",
                    draft.conditions.filter((x) => x.key !== c.key),
                  )
                }
              />
            ))}
          </ol>
        ) : (
          <p className="text-sm text-slate-500">
            {Object.keys(args).length ? "No condition: the rule applies whatever the arguments." : "The approved tools declare no argument a condition could test."}
          </p>
        )}
        <Button
          variant="secondary"
          disabled={!Object.keys(args).length}
          onClick={() => {
            const first = Object.keys(args).sort()[0] ?? "";
            const t = args[first];
            set("conditions", [
              ...draft.conditions,
              { key: Math.max(0, ...draft.conditions.map((c) => c.key)) + 1, arg: first, op: t === "SetString" ? "present" : "eq", value: t === "Bool" ? "true" : "" },
            ]);
          }}
        >
          Add condition
        </Button>
      </Section>

      <Section legend="Time window" hint="Hours are UTC, as the policy engine evaluates them." error={err("rule.time")}>
        <Checkbox label="Only during a time window" checked={draft.timeOn} onChange={(v) => set("timeOn", v)} />
        {draft.timeOn ? (
          <div className="space-y-2 pl-6">
            <div className="flex flex-wrap items-end gap-3">
              <div>
                <label htmlFor={`${effectName}-from`} className="block text-xs font-medium text-slate-600">
                  From (UTC)
                </label>
                <select id={`${effectName}-from`} value={draft.fromHour} onChange={(e) => set("fromHour", Number(e.target.value))} className={cx(smallControl, "ring-slate-300")}>
                  {Array.from({ length: 24 }, (_, h) => (
                    <option key={h} value={h}>
                      {hour(h)}
                    </option>
                  ))}
                </select>
              </div>
              <div>
                <label htmlFor={`${effectName}-to`} className="block text-xs font-medium text-slate-600">
                  Until (UTC, exclusive)
                </label>
                <select id={`${effectName}-to`} value={draft.toHour} onChange={(e) => set("toHour", Number(e.target.value))} className={cx(smallControl, "ring-slate-300")}>
                  {Array.from({ length: 24 }, (_, i) => i + 1).map((h) => (
                    <option key={h} value={h}>
                      {hour(h)}
                    </option>
                  ))}
                </select>
              </div>
              <p className="pb-1.5 text-xs text-slate-500">
                {draft.fromHour === draft.toHour % 24
                  ? "Same start and end: the window covers the whole day."
                  : draft.fromHour < draft.toHour
                    ? `${hour(draft.fromHour)}–${hour(draft.toHour)} UTC`
                    : `Overnight: from ${hour(draft.fromHour)} until ${hour(draft.toHour)} UTC the next day`}
              </p>
            </div>
            <div>
              <span id={`${effectName}-days`} className="block text-xs font-medium text-slate-600">
                Weekdays (none checked: every day)
              </span>
              <div role="group" aria-labelledby={`${effectName}-days`} className="mt-1 flex flex-wrap gap-x-4 gap-y-1">
                {weekdays.map((d, i) => (
                  <Checkbox key={d} label={d} checked={draft.days.includes(i)} onChange={(v) => set("days", v ? [...draft.days, i] : draft.days.filter((x) => x !== i))} />
                ))}
              </div>
            </div>
          </div>
        ) : null}
      </Section>
    </fieldset>
  );
}
