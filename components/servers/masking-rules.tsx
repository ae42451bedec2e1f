"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { Badge, Button, Card, ConfirmButton, EmptyState, ErrorBanner, SelectField, Table, Td, TextArea, Time } from "@/components/ui";
import { ApiError, apiFetch, keys } from "@/lib/client/api";

export interface MaskingRuleView {
  id: string;
  serverId: string;
  tool: string;
  paths: string[];
  mode: "hide" | "hash";
  createdBy: string;
  createdAt: string;
  updatedAt: string;
}
interface MaskingList {
  serverId: string;
  items: MaskingRuleView[];
  tools: string[];
}

/** Query key of a server's masking rules: under the server's, so server invalidations refresh it. */
export const maskingKey = (serverId: string) => [...keys.servers.byId(serverId), "masking"] as const;

/** The server's masking rules: list, add, delete. */
export function MaskingRules({ serverId, canWrite }: { serverId: string; canWrite: boolean }) {
  const qc = useQueryClient();
  const sid = encodeURIComponent(serverId);
  const list = useQuery({ queryKey: maskingKey(serverId), queryFn: () => apiFetch<MaskingList>(`/servers/${sid}/masking`) });
  const refresh = () => qc.invalidateQueries({ queryKey: maskingKey(serverId) });
  const items = list.data?.items ?? [];

  return (
    <div className="space-y-6">
      <div className="rounded-md bg-indigo-50 p-3 text-sm text-indigo-900 ring-1 ring-inset ring-indigo-200">
        <p>
          Masking rules travel in the signed bundle. Agents apply them <strong>before</strong> a decision leaves them, so the control plane never receives a masked value in clear: the audit log stores{" "}
          <code>[masked]</code> (hide) or a keyed <code>sha256:…</code> prefix (hash). Changes reach agents within milliseconds.
        </p>
        <p className="mt-1 text-indigo-800">
          Hashing lets you spot equal values across calls, but short or guessable values (PINs, amounts, yes/no) can be recovered by trying candidates: hide those. Policies still see the real values;
          impact analysis skips decisions whose masked arguments a changed policy reads.
        </p>
      </div>
      <Card title="Masking rules">
        <ErrorBanner error={list.error} />
        {list.isLoading ? (
          <p className="text-sm text-slate-500" role="status">
            Loading…
          </p>
        ) : items.length === 0 ? (
          <EmptyState title="No masking rule">Arguments of this server's calls are stored as sent. Add a rule to hide or hash card numbers, tokens or personal data.</EmptyState>
        ) : (
          <Table head={["Tool", "Paths", "Mode", "By", "Updated", ""]}>
            {items.map((r) => (
              <tr key={r.id} data-testid={`masking-rule-${r.id}`}>
                <Td>{r.tool === "*" ? <Badge color="blue">all tools</Badge> : <code className="text-xs">{r.tool}</code>}</Td>
                <Td>
                  <ul className="space-y-0.5">
                    {r.paths.map((p) => (
                      <li key={p}>
                        <code className="text-xs">{p}</code>
                      </li>
                    ))}
                  </ul>
                </Td>
                <Td>{r.mode === "hide" ? <Badge color="gray">hide</Badge> : <Badge color="amber">hash</Badge>}</Td>
                <Td>{r.createdBy}</Td>
                <Td>
                  <Time iso={r.updatedAt} />
                </Td>
                <Td>
                  {canWrite ? (
                    <ConfirmButton
                      label="Delete"
                      title="Delete this masking rule?"
                      body="Agents stop masking these paths within milliseconds: later decisions store these arguments in clear. Decisions already stored stay masked."
                      confirmLabel="Delete rule"
                      onConfirm={() => apiFetch(`/servers/${sid}/masking/${encodeURIComponent(r.id)}`, { method: "DELETE" }).then(refresh)}
                    />
                  ) : null}
                </Td>
              </tr>
            ))}
          </Table>
        )}
      </Card>
      {canWrite && list.data ? <AddRule serverId={serverId} tools={list.data.tools} onAdded={refresh} /> : null}
    </div>
  );
}

function AddRule({ serverId, tools, onAdded }: { serverId: string; tools: string[]; onAdded: () => unknown }) {
  const [tool, setTool] = useState("*");
  const [paths, setPaths] = useState("");
  const [mode, setMode] = useState<"hide" | "hash">("hide");
  const add = useMutation({
    mutationFn: () =>
      apiFetch<MaskingRuleView>(`/servers/${encodeURIComponent(serverId)}/masking`, {
        method: "POST",
        body: {
          tool,
          paths: paths
            .split(/[\n,]/)
            .map((p) => p.trim())
            .filter(Boolean),
          mode,
        },
      }),
    onSuccess: () => {
      setPaths("");
      void onAdded();
    },
  });
  const err = add.error instanceof ApiError ? add.error : null;
  // Zod reports "paths.<i>": name the line the admin typed.
  const pathsError = err?.issues
    .filter((i) => i.path === "paths" || i.path.startsWith("paths."))
    .map((i) => (/^paths\.(\d+)/.test(i.path) ? `line ${Number(i.path.split(".")[1]) + 1}: ${i.message}` : i.message))
    .join("; ");
  return (
    <Card title="Add a rule">
      <form
        className="grid gap-4 md:grid-cols-[14rem_1fr_10rem]"
        onSubmit={(e) => {
          e.preventDefault();
          add.mutate();
        }}
      >
        <SelectField label="Tool" value={tool} onChange={(e) => setTool(e.target.value)} error={err?.field("tool")}>
          <option value="*">All tools</option>
          {tools.map((t) => (
            <option key={t} value={t}>
              {t}
            </option>
          ))}
        </SelectField>
        <TextArea
          label="Argument paths (one per line)"
          rows={3}
          value={paths}
          onChange={(e) => setPaths(e.target.value)}
          placeholder={"card.number\nitems.*.ssn"}
          hint='Dot-separated keys; "*" matches every key or array item; "*" alone masks every argument. Up to 50 paths of 200 characters.'
          error={pathsError || undefined}
        />
        <SelectField
          label="Mode"
          value={mode}
          onChange={(e) => setMode(e.target.value as "hide" | "hash")}
          hint={mode === "hide" ? 'Stored as "[masked]"' : "Stored as sha256:… (guessable if low-entropy)"}
        >
          <option value="hide">Hide</option>
          <option value="hash">Hash</option>
        </SelectField>
        <div className="md:col-span-3 flex items-center gap-3">
          <Button type="submit" busy={add.isPending} disabled={!paths.trim()}>
            Add rule
          </Button>
          {add.isSuccess ? (
            <span className="text-sm text-emerald-700" role="status">
              Rule added; the live bundles were republished.
            </span>
          ) : null}
        </div>
        {add.error && !pathsError && !err?.field("tool") ? (
          <div className="md:col-span-3">
            <ErrorBanner error={add.error} />
          </div>
        ) : null}
      </form>
    </Card>
  );
}
