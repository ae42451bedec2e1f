"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useRouter } from "next/navigation";
import { useState } from "react";
import { Button, ErrorBanner } from "@/components/ui";
import { apiFetch } from "@/lib/client/api";
import { auditKeys, filterQuery, type AuditFilter } from "./filters";

interface View {
  id: string;
  name: string;
  /** The log's address-bar query (see filterQuery). */
  query: string;
}

const MAX_NAME = 60;
const viewsKey = [...auditKeys.all, "views"] as const;

/**
 * Saved views of the decision log, per user, stored by the server
 * (GET/POST /decisions/views, DELETE /decisions/views/{id}): a view is a
 * name and a filter query string. Saving a name again replaces it.
 */
export function SavedViews({ filter }: { filter: AuditFilter }) {
  const router = useRouter();
  const qc = useQueryClient();
  const [name, setName] = useState("");
  const views = useQuery({ queryKey: viewsKey, queryFn: () => apiFetch<{ items: View[] }>("/decisions/views") });
  const current = filterQuery(filter);
  const save = useMutation({
    mutationFn: (n: string) => apiFetch<View>("/decisions/views", { method: "POST", body: { name: n, query: current } }),
    onSuccess: () => {
      setName("");
      return qc.invalidateQueries({ queryKey: viewsKey });
    },
  });
  const remove = useMutation({
    mutationFn: (id: string) => apiFetch<void>(`/decisions/views/${encodeURIComponent(id)}`, { method: "DELETE" }),
    onSuccess: () => qc.invalidateQueries({ queryKey: viewsKey }),
  });
  const items = views.data?.items ?? [];
  return (
    <div className="mb-4 flex flex-wrap items-center gap-2 text-sm" data-testid="saved-views">
      <span className="text-slate-500">Saved views:</span>
      {views.isSuccess && items.length === 0 ? <span className="text-xs text-slate-400">none yet</span> : null}
      {items.map((v) => (
        <span key={v.id} className={`inline-flex items-center rounded-full px-2 py-0.5 ring-1 ${v.query === current ? "bg-indigo-50 ring-indigo-300" : "ring-slate-300"}`}>
          <button type="button" className="hover:underline" onClick={() => router.replace(v.query ? `/audit?${v.query}` : "/audit", { scroll: false })} title={v.query || "the default view"}>
            {v.name}
          </button>
          <button type="button" className="ml-1 text-slate-400 hover:text-rose-600" aria-label={`Delete the view ${v.name}`} onClick={() => remove.mutate(v.id)}>
            ×
          </button>
        </span>
      ))}
      <form
        className="inline-flex items-center gap-1"
        onSubmit={(e) => {
          e.preventDefault();
          const n = name.trim().slice(0, MAX_NAME);
          if (n) save.mutate(n);
        }}
      >
        <input
          value={name}
          onChange={(e) => setName(e.target.value)}
          maxLength={MAX_NAME}
          placeholder="Name this view"
          aria-label="Name of the view to save"
          className="w-40 rounded-md border border-slate-300 px-2 py-1 text-sm"
        />
        <Button type="submit" variant="secondary" disabled={!name.trim()} busy={save.isPending}>
          Save view
        </Button>
      </form>
      {views.error || save.error || remove.error ? <ErrorBanner error={views.error ?? save.error ?? remove.error} /> : null}
    </div>
  );
}
