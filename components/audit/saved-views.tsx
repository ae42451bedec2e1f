"use client";

import { useRouter } from "next/navigation";
import { useEffect, useState } from "react";
import { useMe } from "@/components/shell/context";
import { Button } from "@/components/ui";
import { filterQuery, type AuditFilter } from "./filters";

interface View {
  name: string;
  /** The log's address-bar query (see filterQuery). */
  qs: string;
}

const MAX_VIEWS = 30;
const MAX_NAME = 60;

/**
 * Saved views of the decision log, per user, in this browser's localStorage
 * (key `mandate.audit.views.<email>`). A view is only a filter query string
 * (no decision data), so keeping it in the browser leaks nothing; it does not
 * follow the user to another browser (a server-side table is the follow-up).
 */
const keyOf = (email: string) => `mandate.audit.views.${email}`;

function load(email: string): View[] {
  try {
    const v: unknown = JSON.parse(localStorage.getItem(keyOf(email)) ?? "[]");
    return Array.isArray(v) ? v.filter((x): x is View => typeof x?.name === "string" && typeof x?.qs === "string").slice(0, MAX_VIEWS) : [];
  } catch {
    return [];
  }
}

export function SavedViews({ filter }: { filter: AuditFilter }) {
  const me = useMe();
  const router = useRouter();
  const [views, setViews] = useState<View[]>([]);
  const [name, setName] = useState("");
  useEffect(() => {
    // localStorage exists only in the browser: read after mount.
    // eslint-disable-next-line react-hooks/set-state-in-effect
    setViews(load(me.email));
  }, [me.email]);
  const store = (next: View[]) => {
    setViews(next);
    localStorage.setItem(keyOf(me.email), JSON.stringify(next));
  };
  const current = filterQuery(filter);
  const save = () => {
    const n = name.trim().slice(0, MAX_NAME);
    if (!n) return;
    store([{ name: n, qs: current }, ...views.filter((v) => v.name !== n)].slice(0, MAX_VIEWS));
    setName("");
  };
  return (
    <div className="mb-4 flex flex-wrap items-center gap-2 text-sm" data-testid="saved-views">
      <span className="text-slate-500">Saved views:</span>
      {views.length === 0 ? <span className="text-xs text-slate-400">none yet</span> : null}
      {views.map((v) => (
        <span key={v.name} className={`inline-flex items-center rounded-full px-2 py-0.5 ring-1 ${v.qs === current ? "bg-indigo-50 ring-indigo-300" : "ring-slate-300"}`}>
          <button type="button" className="hover:underline" onClick={() => router.replace(v.qs ? `/audit?${v.qs}` : "/audit", { scroll: false })} title={v.qs || "the default view"}>
            {v.name}
          </button>
          <button type="button" className="ml-1 text-slate-400 hover:text-rose-600" aria-label={`Delete the view ${v.name}`} onClick={() => store(views.filter((x) => x.name !== v.name))}>
            ×
          </button>
        </span>
      ))}
      <form
        className="inline-flex items-center gap-1"
        onSubmit={(e) => {
          e.preventDefault();
          save();
        }}
      >
        <input value={name} onChange={(e) => setName(e.target.value)} maxLength={MAX_NAME} placeholder="Name this view" aria-label="Name of the view to save" className="w-40 rounded-md border border-slate-300 px-2 py-1 text-sm" />
        <Button type="submit" variant="secondary" disabled={!name.trim()}>
          Save view
        </Button>
      </form>
    </div>
  );
}
