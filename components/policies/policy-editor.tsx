"use client";

import { useMutation, useQueryClient } from "@tanstack/react-query";
import Link from "next/link";
import { useRouter } from "next/navigation";
import dynamic from "next/dynamic";
import { useId, useMemo, useRef, useState } from "react";
import { Checkbox } from "@/components/servers/fields";
import { useServerQuery } from "@/components/servers/server-context";
import { useCanWrite, useMe } from "@/components/shell/context";
import { Badge, Button, Card, ConfirmButton, ErrorBanner, PageHeader, TextArea, TextField, Time, useUnsavedGuard } from "@/components/ui";
import { ApiError, apiFetch, keys, qs } from "@/lib/client/api";
import { CedarCode } from "./cedar-code";
import { IssuesList, parseSaveIssue, usePolicyCheck, type ShownIssue } from "./issues";
import { PolicyHistory } from "./history";
import { PublishNext } from "./publish-next";
import { policiesHref, useCedarSchema } from "./queries";
import { RuleBuilder, draftFromRule, emptyRuleDraft, ruleFromDraft, type RuleDraft } from "./rule-builder";
import type { CedarSchemaInfo, PolicyRule, PublicPolicy } from "./types";

// CodeMirror loads with the Cedar editor only (its own chunk), never on rule pages or lists.
const CedarEditor = dynamic(() => import("./cedar-editor"), {
  ssr: false,
  loading: () => <div className="h-[284px] animate-pulse rounded-md bg-slate-100 ring-1 ring-slate-200" aria-busy="true" aria-label="Loading the editor" />,
});

const CEDAR_TEMPLATE = `// Describe what this policy allows or forbids, and why.
permit (
  principal,
  action == Action::"list_tools",
  resource
);
`;

interface Form {
  name: string;
  description: string;
  enabled: boolean;
  rule: RuleDraft;
  cedar: string;
}

function initialForm(policy: PublicPolicy | undefined): Form {
  return {
    name: policy?.name ?? "",
    description: policy?.description ?? "",
    enabled: policy?.enabled ?? true,
    rule: policy?.rule ? draftFromRule(policy.rule) : emptyRuleDraft(),
    cedar: policy ? policy.cedar : CEDAR_TEMPLATE,
  };
}

/** What the form holds, for comparison (condition row keys do not count). */
function comparable(f: Form, kind: "rule" | "cedar") {
  const body = kind === "rule" ? { ...f.rule, conditions: f.rule.conditions.map(({ key: _key, ...c }) => c) } : f.cedar;
  return JSON.stringify({ name: f.name.trim(), description: f.description.trim(), enabled: f.enabled, body });
}

/** The preview compiles with the name "preview"; show the name the policy will be saved under. */
const withName = (cedar: string, name: string) => (name.trim() ? cedar.replace(/^@id\("preview"\)/, `@id(${JSON.stringify(name.trim())})`) : cedar);

function SchemaReference({ schema, serverId }: { schema: CedarSchemaInfo; serverId: string }) {
  const usable = schema.tools.filter((t) => t.approved && !t.blocked);
  const args = Object.entries(schema.arguments).sort(([a], [b]) => a.localeCompare(b));
  return (
    <div className="space-y-3 text-xs">
      <div>
        <h3 className="mb-1 font-semibold text-slate-700">Approved tools</h3>
        {usable.length ? (
          <ul className="space-y-0.5 font-mono">
            {usable.map((t) => (
              <li key={t.name} className="break-all text-amber-800">
                Tool::{JSON.stringify(`${serverId}/${t.name}`)}
              </li>
            ))}
          </ul>
        ) : (
          <p className="text-slate-500">No approved tool: a policy cannot name any tool yet.</p>
        )}
      </div>
      <div>
        <h3 className="mb-1 font-semibold text-slate-700">Arguments (context.args)</h3>
        {args.length ? (
          <ul className="space-y-0.5 font-mono">
            {args.map(([n, t]) => (
              <li key={n}>
                {n}: <span className="text-slate-500">{t === "SetString" ? "Set<String>" : t === "Bool" ? "Bool" : t}</span>
              </li>
            ))}
          </ul>
        ) : (
          <p className="text-slate-500">The approved tools declare no argument Cedar can test.</p>
        )}
        {schema.conflicts.length ? <p className="mt-1 text-amber-800">Not usable (different types across tools): {schema.conflicts.join(", ")}</p> : null}
      </div>
      <div className="text-slate-600">
        <h3 className="mb-1 font-semibold text-slate-700">Also in the context</h3>
        <p className="font-mono leading-5">
          context.scopes (Set&lt;String&gt;), context.client, context.tenant, context.time.hour / .weekday (UTC, 0 = Sunday), context.delegation.depth; resource.risk, resource.readOnly,
          resource.destructive; principal in Group::&quot;…&quot;
        </p>
      </div>
      <details>
        <summary className="cursor-pointer font-semibold text-slate-700">Full schema</summary>
        <pre className="mt-1 max-h-96 overflow-auto rounded bg-slate-50 p-2 font-mono text-[11px] leading-4 text-slate-700 ring-1 ring-slate-200">{schema.text}</pre>
      </details>
    </div>
  );
}

/**
 * The policy editor, for a new policy (no `policy`) or a saved one. Rules are
 * built in a form and previewed as Cedar; Cedar policies are written in a
 * highlighting editor. Both are checked live against the server's schema.
 */
export function PolicyEditor({ tenantId, serverId, kind, policy, justCreated }: { tenantId: string; serverId: string; kind: "rule" | "cedar"; policy?: PublicPolicy; justCreated?: boolean }) {
  const me = useMe();
  const canWrite = useCanWrite(tenantId);
  const router = useRouter();
  const qc = useQueryClient();
  const editorId = useId();
  const jump = useRef<((line: number, column: number) => void) | null>(null);
  const issuesId = useId();
  const server = useServerQuery(serverId);
  const schema = useCedarSchema(serverId);
  const args = useMemo(() => schema.data?.arguments ?? {}, [schema.data]);

  const [form, setForm] = useState<Form>(() => initialForm(policy));
  const [baseline, setBaseline] = useState(() => comparable(initialForm(policy), kind));
  const [savedNote, setSavedNote] = useState<string | null>(null);
  const set = <K extends keyof Form>(k: K, v: Form[K]) => {
    // The editor echoes a text set from outside (a restore): not an edit, the note stays.
    if (form[k] === v) return;
    setSavedNote(null);
    setForm((f) => ({ ...f, [k]: v }));
  };

  const rule: PolicyRule = useMemo(() => ruleFromDraft(form.rule, args), [form.rule, args]);
  const check = usePolicyCheck(tenantId, serverId, kind === "rule" ? { rule } : { cedar: form.cedar });
  const checkIssues = check.data?.issues ?? [];
  const dirty = comparable(form, kind) !== baseline;

  const save = useMutation({
    mutationFn: (f: Form) => {
      const body = kind === "rule" ? { rule: ruleFromDraft(f.rule, args) } : { cedar: f.cedar };
      const common = { name: f.name.trim(), description: f.description.trim(), enabled: f.enabled, ...body };
      return policy
        ? apiFetch<PublicPolicy>(`/policies/${encodeURIComponent(policy.id)}`, { method: "PATCH", body: { ...common, baseUpdatedAt: policy.updatedAt } })
        : apiFetch<PublicPolicy>("/policies", { method: "POST", body: { tenantId, serverId, kind, ...common } });
    },
    onSuccess: async (saved, f) => {
      qc.setQueryData(keys.policies.byId(saved.id), saved);
      setBaseline(comparable(f, kind));
      setSavedNote(policy ? "Saved. The change is part of the draft; publish a bundle to enforce it." : null);
      await qc.invalidateQueries({ queryKey: keys.policies.all, refetchType: "none" });
      // Every fleet's draft may have changed: the "Review and publish" page must not show a cached one.
      void qc.invalidateQueries({ queryKey: keys.fleets.all });
      if (!policy) router.replace(`/policies/${encodeURIComponent(saved.id)}?created=1`);
    },
  });

  const remove = async () => {
    await apiFetch(`/policies/${encodeURIComponent(policy!.id)}`, { method: "DELETE" });
    setBaseline(comparable(form, kind)); // nothing to warn about when leaving
    router.push(policiesHref(tenantId, serverId));
    await qc.invalidateQueries({ queryKey: keys.policies.list({ tenantId, serverId }) });
  };

  // Leaving with unsaved edits asks first: a link in the app, closing or reloading the tab.
  useUnsavedGuard(dirty && canWrite && !save.isPending);

  const saveError = save.error instanceof ApiError ? save.error : null;
  const saveIssues: ShownIssue[] = saveError ? saveError.issues.map(parseSaveIssue) : [];
  // A field's first problem: from the last save, else from the live check of the rule.
  const err = (path: string) =>
    saveIssues.find((i) => i.path === path || i.path?.startsWith(`${path}.`))?.message ?? checkIssues.find((i) => i.path === path || i.path?.startsWith(`${path}.`))?.message;

  const tenantName = me.tenants.find((t) => t.id === tenantId)?.name ?? tenantId;
  const serverName = server.data?.name ?? serverId;
  const back = policiesHref(tenantId, serverId);
  // Ids in the Cedar previews get their names as tooltips.
  const idNames = { [serverId]: `server ${serverName}`, [tenantId]: `tenant ${tenantName}` };
  const title = policy ? policy.name : kind === "rule" ? "New rule" : "New Cedar policy";
  const formatted = kind === "cedar" && !check.pending ? check.data?.result?.formatted : null;
  const preview = check.data?.result ? withName(check.data.result.cedar, form.name) : null;

  return (
    <div className="space-y-5">
      <nav aria-label="Breadcrumb" className="text-sm">
        <Link href={back} className="text-slate-500 hover:text-slate-700 hover:underline">
          Policies
        </Link>
        <span aria-hidden className="mx-1.5 text-slate-400">
          /
        </span>
        <span className="text-slate-700">{tenantName}</span>
        <span aria-hidden className="mx-1.5 text-slate-400">
          /
        </span>
        <span className="text-slate-700">{serverName}</span>
      </nav>
      <PageHeader
        title={
          <span className="flex items-center gap-2">
            {title}
            <Badge color={kind === "rule" ? "blue" : "gray"}>{kind === "rule" ? "rule" : "Cedar"}</Badge>
            {policy && !policy.enabled ? <Badge color="amber">disabled</Badge> : null}
          </span>
        }
        description={
          kind === "rule"
            ? "Build the rule with the form; the Cedar it compiles to is shown and checked against the server’s schema as you type."
            : "Write Cedar against the server’s schema. Each policy is confined to this tenant and this server when it is compiled into a bundle."
        }
        actions={
          canWrite ? (
            <>
              {policy ? (
                <ConfirmButton
                  label="Delete"
                  title={`Delete policy “${policy.name}”?`}
                  body={
                    <>
                      The policy is removed from the draft of <strong>{serverName}</strong> for <strong>{tenantName}</strong>. Published bundles keep enforcing it until the next publish. This cannot
                      be undone.
                    </>
                  }
                  confirmLabel="Delete policy"
                  onConfirm={remove}
                />
              ) : null}
              <Button onClick={() => save.mutate(form)} busy={save.isPending} disabled={policy ? !dirty : false}>
                {policy ? "Save changes" : kind === "rule" ? "Create rule" : "Create policy"}
              </Button>
            </>
          ) : null
        }
      />

      {!canWrite ? (
        <p className="rounded-md bg-slate-100 px-3 py-2 text-sm text-slate-700" role="note">
          Read-only: only admins of {tenantName} (and owners) can change its policies.
        </p>
      ) : null}
      {savedNote || (justCreated && !dirty) ? (
        <div role="status" className="rounded-md bg-emerald-50 px-3 py-2 text-sm text-emerald-800 ring-1 ring-inset ring-emerald-200">
          <p>{savedNote ?? "Policy created. It is part of the draft; publish a bundle to enforce it."}</p>
          {me.globalRole !== "member" ? <PublishNext serverId={serverId} canPublish={me.globalRole === "owner"} /> : null}
        </div>
      ) : null}
      {dirty && canWrite && policy ? (
        <p role="status" className="text-sm text-amber-700">
          Unsaved changes
        </p>
      ) : null}

      {save.error ? (
        <div role="alert" className="space-y-1 rounded-md bg-rose-50 px-3 py-2 text-sm text-rose-800 ring-1 ring-inset ring-rose-200">
          <p className="font-medium">Not saved: {save.error.message}</p>
          {saveIssues.length ? (
            <ul data-testid="save-issues" className="list-inside list-disc space-y-0.5">
              {saveIssues.map((i, n) => (
                <li key={n}>
                  {i.line ? <span className="mr-1 font-mono text-xs font-semibold">{`line ${i.line}, column ${i.column}`}</span> : null}
                  {i.field ? <span className="mr-1 font-medium">{i.field}:</span> : null}
                  {i.message}
                </li>
              ))}
            </ul>
          ) : null}
        </div>
      ) : null}

      <Card title="Details">
        <fieldset disabled={!canWrite} className="grid grid-cols-1 gap-4 lg:grid-cols-2">
          <legend className="sr-only">Details</legend>
          <div className="space-y-3">
            <TextField
              label="Name"
              required
              value={form.name}
              maxLength={80}
              onChange={(e) => set("name", e.target.value)}
              error={err("name")}
              hint="Unique for this tenant and server; shown in decisions and the audit log."
            />
            <Checkbox
              label="Enabled"
              hint="A disabled policy stays saved but is left out of drafts, tests and published bundles."
              checked={form.enabled}
              onChange={(v) => set("enabled", v)}
              disabled={!canWrite}
            />
          </div>
          <TextArea label="Description" rows={3} value={form.description} maxLength={2000} onChange={(e) => set("description", e.target.value)} error={err("description")} />
        </fieldset>
      </Card>

      <ErrorBanner error={schema.error} />

      {kind === "rule" ? (
        <div className="grid grid-cols-1 items-start gap-5 xl:grid-cols-2">
          <Card title="Rule">
            <RuleBuilder draft={form.rule} onChange={(d) => set("rule", d)} schema={schema.data} disabled={!canWrite} err={err} />
          </Card>
          <div className="space-y-5 xl:sticky xl:top-4">
            <Card title="Cedar preview" actions={check.pending ? <span className="text-xs text-slate-500">updating…</span> : null}>
              <div className="space-y-3">
                {preview !== null ? (
                  <CedarCode text={preview} issues={check.data?.result?.issues} testId="cedar-preview" label="Compiled Cedar" className="max-h-[32rem]" names={idNames} />
                ) : check.data ? (
                  <p className="rounded-md bg-slate-50 px-3 py-6 text-center text-sm text-slate-600 ring-1 ring-slate-200">
                    The rule is not complete yet: fix the problems below to see the Cedar it compiles to.
                  </p>
                ) : check.error ? null : (
                  <p className="text-sm text-slate-500">Compiling…</p>
                )}
                <ErrorBanner error={check.error} />
                <IssuesList issues={checkIssues} pending={check.pending} okText={`Valid against the schema of ${serverName}`} />
              </div>
            </Card>
            {policy ? (
              <Card title="Compiles to (saved)">
                <p className="mb-2 text-xs text-slate-500">
                  The Cedar stored for this rule, as of <Time iso={policy.updatedAt} />.
                </p>
                <CedarCode text={policy.cedar} testId="cedar-saved" label="Saved Cedar" className="max-h-96" names={idNames} />
              </Card>
            ) : null}
          </div>
        </div>
      ) : (
        <div className="grid grid-cols-1 items-start gap-5 xl:grid-cols-[minmax(0,1fr)_20rem]">
          <Card
            title={<span id={`${editorId}-label`}>Cedar</span>}
            actions={
              canWrite ? (
                <Button
                  variant="secondary"
                  disabled={!formatted || formatted === form.cedar}
                  title={formatted ? "Apply Cedar’s standard formatting (Shift+Alt+F in the editor)" : "Formatting needs valid Cedar"}
                  onClick={() => formatted && set("cedar", formatted)}
                >
                  Format
                </Button>
              ) : null
            }
          >
            <div className="space-y-3">
              <CedarEditor
                id={editorId}
                value={form.cedar}
                onChange={(v) => set("cedar", v)}
                issues={check.data?.issues}
                readOnly={!canWrite}
                describedBy={issuesId}
                schema={schema.data}
                serverId={serverId}
                jumpRef={jump}
                formatted={formatted}
              />
              <ErrorBanner error={check.error} />
              <IssuesList id={issuesId} issues={checkIssues} pending={check.pending} okText={`Valid against the schema of ${serverName}`} onJump={(l, c) => jump.current?.(l, c)} />
            </div>
          </Card>
          <Card title="Schema reference">{schema.data ? <SchemaReference schema={schema.data} serverId={serverId} /> : <p className="text-sm text-slate-500">Loading…</p>}</Card>
        </div>
      )}

      {policy ? (
        <PolicyHistory
          policy={policy}
          canWrite={canWrite}
          dirty={dirty}
          onRestored={(saved) => {
            const f = initialForm(saved);
            setForm(f);
            setBaseline(comparable(f, kind));
            save.reset();
            setSavedNote("Version restored as the draft. Publish a bundle to enforce it.");
            window.scrollTo({ top: 0, behavior: "smooth" });
          }}
        />
      ) : null}

      {policy ? (
        <p className="text-xs text-slate-500">
          Created <Time iso={policy.createdAt} />, last changed <Time iso={policy.updatedAt} />. Try it in the{" "}
          <Link href={`/simulator${qs({ tenant: tenantId, server: serverId })}`} className="text-indigo-700 hover:underline">
            simulator
          </Link>
          .
        </p>
      ) : null}
    </div>
  );
}
