"use client";

import { useMutation } from "@tanstack/react-query";
import { useId, useState, type FormEvent } from "react";
import { FormError, fieldError } from "@/components/servers/fields";
import { FormActions, Modal, TextField } from "@/components/ui";
import { ApiError, apiFetch } from "@/lib/client/api";
import { RequestFields, draftFromRequest, emptyRequestDraft, requestErrorsFromApi, requestFromDraft, type RequestDraft, type RequestErrors } from "./request-fields";
import type { CedarSchemaInfo, PublicPolicyTest } from "./types";

const HANDLED = ["name", "expected", "request.user", "request.tool", "request.args", "request.time", "request.groups", "request.client", "request.scopes"];

function TestForm({
  tenantId,
  serverId,
  test,
  schema,
  serverScopes,
  onDone,
  onCancel,
}: {
  tenantId: string;
  serverId: string;
  test?: PublicPolicyTest;
  schema: CedarSchemaInfo | undefined;
  serverScopes: string[];
  onDone: (t: PublicPolicyTest) => void;
  onCancel: () => void;
}) {
  const expectedName = useId();
  const [name, setName] = useState(test?.name ?? "");
  const [request, setRequest] = useState<RequestDraft>(() => (test ? draftFromRequest(test.request) : emptyRequestDraft()));
  const [expected, setExpected] = useState<"allow" | "deny">(test?.expected ?? "allow");
  const [local, setLocal] = useState<RequestErrors>({});

  const save = useMutation({
    mutationFn: (body: { name: string; request: unknown; expected: "allow" | "deny" }) =>
      test
        ? apiFetch<PublicPolicyTest>(`/policy-tests/${encodeURIComponent(test.id)}`, { method: "PATCH", body })
        : apiFetch<PublicPolicyTest>("/policy-tests", { method: "POST", body: { tenantId, serverId, ...body } }),
    onSuccess: onDone,
  });
  const apiErrors = save.error instanceof ApiError ? requestErrorsFromApi(save.error.issues) : {};
  const errors: RequestErrors = { ...apiErrors, ...local };

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const r = requestFromDraft(request);
    if (!r.ok) {
      setLocal(r.errors);
      return;
    }
    setLocal({});
    save.mutate({ name: name.trim(), request: r.request, expected });
  };

  return (
    <form noValidate onSubmit={submit} className="space-y-4">
      <TextField
        label="Test name"
        required
        autoFocus
        value={name}
        maxLength={80}
        onChange={(e) => setName(e.target.value)}
        error={fieldError(save.error, "name")}
        placeholder="support may read tickets"
      />
      <RequestFields value={request} onChange={(d) => setRequest(d)} schema={schema} serverScopes={serverScopes} errors={errors} />
      <fieldset>
        <legend className="text-sm font-medium text-slate-700">Expected decision</legend>
        <div className="mt-1 flex gap-4">
          {(["allow", "deny"] as const).map((v) => (
            <label key={v} className="flex items-center gap-2 text-sm font-medium text-slate-700">
              <input type="radio" name={expectedName} value={v} checked={expected === v} onChange={() => setExpected(v)} className="h-4 w-4 border-slate-300 text-indigo-600" />
              {v === "allow" ? "Allow" : "Deny"}
            </label>
          ))}
        </div>
      </fieldset>
      <FormError error={save.error} handled={HANDLED} />
      <FormActions onCancel={onCancel} busy={save.isPending} submitLabel={test ? "Save test" : "Add test"} />
    </form>
  );
}

/** Add or edit a policy test: a request and the decision it must get. */
export function TestModal({
  open,
  onClose,
  onSaved,
  ...props
}: {
  open: boolean;
  onClose: () => void;
  onSaved: (t: PublicPolicyTest) => void;
  tenantId: string;
  serverId: string;
  test?: PublicPolicyTest;
  schema: CedarSchemaInfo | undefined;
  serverScopes: string[];
}) {
  return (
    <Modal open={open} onClose={onClose} title={props.test ? `Edit test “${props.test.name}”` : "Add test"}>
      <div className="max-h-[75vh] overflow-y-auto pr-1">
        <TestForm
          key={props.test?.id ?? "new"}
          {...props}
          onCancel={onClose}
          onDone={(t) => {
            onSaved(t);
            onClose();
          }}
        />
      </div>
    </Modal>
  );
}
