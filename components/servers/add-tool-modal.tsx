"use client";

import { parseJsonObject } from "@/lib/client/json-text";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { Modal, SelectField, TextArea, TextField, FormActions } from "@/components/ui";
import { apiFetch, keys } from "@/lib/client/api";
import type { PublicTool } from "@/lib/client/types";
import { riskLevels, type Risk } from "./badges";
import { Checkbox, FormError, fieldError } from "./fields";

const SCHEMA_TEMPLATE = `{
  "type": "object",
  "properties": {},
  "required": []
}`;

/** Parses the input schema text; returns the object or a readable error. */
export function parseInputSchema(text: string): { ok: true; value: Record<string, unknown> } | { ok: false; error: string } {
  if (!text.trim()) return { ok: false, error: 'Enter a JSON Schema, at least {"type": "object"}' };
  const parsed = parseJsonObject(text, "Enter a JSON Schema object.");
  if (parsed.ok && parsed.value.type !== "object") return { ok: false, error: 'MCP tools take an object: the schema needs "type": "object"' };
  return parsed;
}

const HANDLED = ["name", "title", "description", "inputSchema", "annotations", "risk"];

function AddToolForm({ serverId, onClose }: { serverId: string; onClose: () => void }) {
  const qc = useQueryClient();
  const [name, setName] = useState("");
  const [title, setTitle] = useState("");
  const [description, setDescription] = useState("");
  const [schema, setSchema] = useState(SCHEMA_TEMPLATE);
  const [schemaError, setSchemaError] = useState<string | null>(null);
  const [readOnly, setReadOnly] = useState(false);
  const [destructive, setDestructive] = useState(false);
  const [risk, setRisk] = useState<Risk>("unrated");

  const add = useMutation({
    mutationFn: (inputSchema: Record<string, unknown>) =>
      apiFetch<PublicTool>(`/servers/${encodeURIComponent(serverId)}/tools`, {
        method: "POST",
        body: {
          name: name.trim(),
          title: title.trim() || null,
          description,
          inputSchema,
          annotations: { readOnlyHint: readOnly, destructiveHint: !readOnly && destructive },
          risk,
        },
      }),
    onSuccess: async () => {
      await Promise.all([qc.invalidateQueries({ queryKey: keys.tools.all }), qc.invalidateQueries({ queryKey: keys.servers.all })]);
      onClose();
    },
  });
  const fe = (p: string) => fieldError(add.error, p);

  return (
    <form
      noValidate
      className="space-y-4"
      onSubmit={(e: FormEvent) => {
        e.preventDefault();
        const parsed = parseInputSchema(schema);
        if (!parsed.ok) {
          setSchemaError(parsed.error);
          return;
        }
        setSchemaError(null);
        add.mutate(parsed.value);
      }}
    >
      <p className="text-sm text-slate-600">A tool you add by hand is approved at once (you wrote the definition). Imports later compare against it.</p>
      <TextField
        label="Name"
        required
        autoFocus
        value={name}
        onChange={(e) => setName(e.target.value)}
        error={fe("name")}
        hint="Exactly as the upstream server names it: letters, digits, _ - ."
        maxLength={128}
      />
      <TextField label="Title" value={title} onChange={(e) => setTitle(e.target.value)} error={fe("title")} maxLength={200} />
      <TextArea label="Description" rows={3} value={description} onChange={(e) => setDescription(e.target.value)} error={fe("description")} />
      <TextArea
        label="Input schema (JSON)"
        rows={8}
        spellCheck={false}
        value={schema}
        onChange={(e) => {
          setSchema(e.target.value);
          if (schemaError) setSchemaError(null);
        }}
        error={schemaError ?? fe("inputSchema")}
        hint='A JSON Schema with "type": "object"'
      />
      <fieldset className="space-y-1.5">
        <legend className="text-sm font-medium text-slate-700">Annotations</legend>
        <Checkbox label="Read-only (readOnlyHint)" hint="The tool does not change its environment" checked={readOnly} onChange={setReadOnly} />
        <Checkbox label="Destructive (destructiveHint)" hint="The tool may delete or overwrite data" checked={!readOnly && destructive} disabled={readOnly} onChange={setDestructive} />
      </fieldset>
      <SelectField label="Risk" value={risk} onChange={(e) => setRisk(e.target.value as Risk)} error={fe("risk")}>
        {riskLevels.map((r) => (
          <option key={r} value={r}>
            {r}
          </option>
        ))}
      </SelectField>
      <FormError error={add.error} handled={HANDLED} />
      <FormActions onCancel={onClose} busy={add.isPending} submitLabel="Add tool" />
    </form>
  );
}

export function AddToolModal({ serverId, open, onClose }: { serverId: string; open: boolean; onClose: () => void }) {
  return (
    <Modal open={open} onClose={onClose} title="Add tool">
      <AddToolForm serverId={serverId} onClose={onClose} />
    </Modal>
  );
}
