"use client";

import { parseJsonObject } from "@/lib/client/json-text";
import { useId } from "react";
import { Checkbox } from "@/components/servers/fields";
import { SelectField, TextArea, TextField } from "@/components/ui";
import { splitList, weekdays } from "./rule-builder";
import type { CedarSchemaInfo, PolicyTestRequest } from "./types";

/** A request as typed in the form. */
export interface RequestDraft {
  user: string;
  groups: string;
  client: string;
  /** Checked scopes the server supports. */
  scopes: string[];
  /** Other scopes, space- or comma-separated. */
  extraScopes: string;
  tool: string;
  action: "call_tool" | "list_tools";
  args: string;
  /** datetime-local value (viewer's local time), or "" for now. */
  time: string;
}

export type RequestErrors = Partial<Record<"user" | "tool" | "args" | "time" | "groups" | "client" | "scopes", string>>;

const pad = (n: number) => String(n).padStart(2, "0");

/** An ISO instant as a datetime-local value in the viewer's zone. */
export function isoToLocalInput(iso: string | undefined): string {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export function emptyRequestDraft(): RequestDraft {
  return { user: "", groups: "", client: "", scopes: [], extraScopes: "", tool: "", action: "call_tool", args: "{}", time: "" };
}

/** A form for a saved request; its scopes show as checked boxes (unsupported ones flagged). */
export function draftFromRequest(r: Partial<PolicyTestRequest>): RequestDraft {
  return {
    user: r.user ?? "",
    groups: (r.groups ?? []).join(", "),
    client: r.client ?? "",
    scopes: [...new Set(r.scopes ?? [])],
    extraScopes: "",
    tool: r.tool ?? "",
    action: r.action ?? "call_tool",
    args: JSON.stringify(r.args ?? {}, null, 2),
    time: isoToLocalInput(r.time),
  };
}

/** Parses the arguments text: a JSON object, or a readable error with its line and column. */
export function parseArgs(text: string): { ok: true; value: Record<string, unknown> } | { ok: false; error: string } {
  if (!text.trim()) return { ok: true, value: {} };
  return parseJsonObject(text, 'Write an object such as {"project": "ops", "limit": 10}.');
}

/** Builds the API request from the form, or the errors to show at the fields. */
export function requestFromDraft(d: RequestDraft): { ok: true; request: PolicyTestRequest } | { ok: false; errors: RequestErrors } {
  const errors: RequestErrors = {};
  if (!d.user.trim()) errors.user = "Enter the user (the token subject) making the request";
  if (!d.tool) errors.tool = "Choose the tool";
  const args = parseArgs(d.args);
  if (!args.ok) errors.args = args.error;
  let time: string | undefined;
  if (d.time) {
    const t = new Date(d.time);
    if (Number.isNaN(t.getTime())) errors.time = "Enter a valid date and time";
    else time = t.toISOString();
  }
  if (Object.keys(errors).length || !args.ok) return { ok: false, errors };
  const scopes = [...new Set([...d.scopes, ...d.extraScopes.split(/[\s,]+/).filter(Boolean)])];
  return {
    ok: true,
    request: { user: d.user.trim(), groups: splitList(d.groups), client: d.client.trim(), scopes, tool: d.tool, action: d.action, args: args.value, ...(time ? { time } : {}) },
  };
}

/** API issue paths ("request.user") to the form's fields. */
export function requestErrorsFromApi(issues: { path: string; message: string }[], prefix = "request"): RequestErrors {
  const out: RequestErrors = {};
  for (const i of issues) {
    const m = new RegExp(`^${prefix}\\.(\\w+)`).exec(i.path);
    const k = m?.[1] as keyof RequestErrors | undefined;
    if (k && ["user", "tool", "args", "time", "groups", "client", "scopes"].includes(k) && !out[k]) out[k] = i.message;
  }
  return out;
}

/**
 * The fields of a request to decide: who (user, groups), through which client
 * with which scopes, what (tool, action, arguments) and when.
 */
export function RequestFields({
  value,
  onChange,
  schema,
  serverScopes,
  errors,
}: {
  value: RequestDraft;
  onChange: (d: RequestDraft) => void;
  schema: CedarSchemaInfo | undefined;
  serverScopes: string[];
  errors: RequestErrors;
}) {
  const id = useId();
  const set = <K extends keyof RequestDraft>(k: K, v: RequestDraft[K]) => onChange({ ...value, [k]: v });
  const tools = schema?.tools ?? [];
  const toolNote = (t: { approved: boolean; blocked: boolean }) => (t.blocked ? " (blocked)" : !t.approved ? " (not approved)" : "");
  // The server's scopes, then any other scope the request already carries (so it can be unchecked).
  const shownScopes = [...serverScopes, ...value.scopes.filter((x) => !serverScopes.includes(x))];
  const argNames = Object.entries(schema?.arguments ?? {}).sort(([a], [b]) => a.localeCompare(b));
  const at = value.time ? new Date(value.time) : null;
  const validAt = at && !Number.isNaN(at.getTime()) ? at : null;

  return (
    <div className="space-y-3">
      <div className="grid grid-cols-1 gap-3 sm:grid-cols-2">
        <TextField
          label="User"
          required
          value={value.user}
          onChange={(e) => set("user", e.target.value)}
          error={errors.user}
          placeholder="alice@example.com"
          hint="The token subject (sub)."
          maxLength={200}
        />
        <TextField label="Groups (comma-separated)" value={value.groups} onChange={(e) => set("groups", e.target.value)} error={errors.groups} placeholder="support, oncall" />
        <TextField
          label="Client"
          value={value.client}
          onChange={(e) => set("client", e.target.value)}
          error={errors.client}
          placeholder="claude-desktop"
          hint="The OAuth client id; empty for none."
          maxLength={200}
        />
        <SelectField label="Action" value={value.action} onChange={(e) => set("action", e.target.value as RequestDraft["action"])}>
          <option value="call_tool">Call tool (call_tool)</option>
          <option value="list_tools">List tools (list_tools)</option>
        </SelectField>
      </div>

      <fieldset className="space-y-1.5">
        <legend className="text-sm font-medium text-slate-700">Scopes</legend>
        {shownScopes.length ? (
          <div className="flex flex-wrap gap-x-4 gap-y-1">
            {shownScopes.map((s) => (
              <Checkbox
                key={s}
                label={
                  <span className="font-mono text-xs">
                    {s}
                    {serverScopes.includes(s) ? null : <span className="ml-1 font-sans text-amber-700">(not supported by the server)</span>}
                  </span>
                }
                checked={value.scopes.includes(s)}
                onChange={(v) => set("scopes", v ? [...value.scopes, s] : value.scopes.filter((x) => x !== s))}
              />
            ))}
          </div>
        ) : (
          <p className="text-xs text-slate-500">The server declares no supported scope.</p>
        )}
        <TextField label="Other scopes" value={value.extraScopes} onChange={(e) => set("extraScopes", e.target.value)} error={errors.scopes} placeholder="space- or comma-separated" />
      </fieldset>

      {tools.length ? (
        <SelectField label="Tool" required value={value.tool} onChange={(e) => set("tool", e.target.value)} error={errors.tool}>
          <option value="">Choose a tool</option>
          {tools.map((t) => (
            <option key={t.name} value={t.name}>
              {t.name}
              {toolNote(t)}
            </option>
          ))}
          {value.tool && !tools.some((t) => t.name === value.tool) ? <option value={value.tool}>{value.tool} (not in the catalogue)</option> : null}
        </SelectField>
      ) : (
        <TextField
          label="Tool"
          required
          value={value.tool}
          onChange={(e) => set("tool", e.target.value)}
          error={errors.tool}
          hint={schema ? "The server has no tool in its catalogue yet." : "Loading the catalogue…"}
        />
      )}

      <TextArea
        label="Arguments (JSON object)"
        rows={4}
        spellCheck={false}
        value={value.args}
        onChange={(e) => set("args", e.target.value)}
        error={errors.args}
        placeholder='{"project": "ops"}'
        hint={
          argNames.length
            ? `Arguments policies can test: ${argNames.map(([n, t]) => `${n} (${t === "SetString" ? "list of strings" : t === "Long" ? "number" : t === "Bool" ? "true/false" : "string"})`).join(", ")}`
            : "The approved tools declare no argument policies can test."
        }
      />

      <div>
        <label htmlFor={`${id}-time`} className="block text-sm font-medium text-slate-700">
          Time (optional)
        </label>
        <div className="mt-1 flex flex-wrap items-center gap-2">
          <input
            id={`${id}-time`}
            type="datetime-local"
            value={value.time}
            onChange={(e) => set("time", e.target.value)}
            aria-invalid={Boolean(errors.time)}
            aria-describedby={`${id}-time-hint`}
            className="block rounded-md border-0 px-2.5 py-1.5 text-sm text-slate-900 ring-1 ring-inset ring-slate-300 focus:ring-2 focus:ring-inset focus:ring-indigo-600"
          />
          {value.time ? (
            <button type="button" onClick={() => set("time", "")} className="text-xs text-indigo-700 hover:underline">
              Clear (use the current time)
            </button>
          ) : null}
        </div>
        <p id={`${id}-time-hint`} className={errors.time ? "mt-1 text-xs text-rose-600" : "mt-1 text-xs text-slate-500"} role={errors.time ? "alert" : undefined}>
          {errors.time ??
            (validAt
              ? `Your local time; decided as ${validAt.toISOString().replace(".000Z", "Z")} (UTC hour ${validAt.getUTCHours()}, ${weekdays[validAt.getUTCDay()]}).`
              : "Empty: the time of the decision. Time windows in policies are in UTC.")}
        </p>
      </div>
    </div>
  );
}
