"use client";

import { useQuery } from "@tanstack/react-query";
import { useRouter } from "next/navigation";
import { useEffect, useId, useMemo, useRef, useState } from "react";
import { cx } from "@/components/ui";
import { apiFetch, keys, qs } from "@/lib/client/api";
import type { Page, PublicServer } from "@/lib/client/types";
import { useMe } from "./context";

interface Item {
  group: "Pages" | "Servers" | "Policies" | "Fleets" | "Tenants" | "Users" | "Decisions";
  label: string;
  hint?: string;
  href: string;
}

const norm = (s: string) => s.toLowerCase();

/**
 * ⌘K / Ctrl-K: jump to a page, a server, a policy, a fleet or a tenant by name
 * or id, to a user's grants or decisions, or to a decision by its id. Server
 * names are searched by the API; policies and fleets (at most a few hundred a
 * viewer reads) are filtered here once loaded.
 */
export function CommandPalette({ open, onClose, pages }: { open: boolean; onClose: () => void; pages: { href: string; label: string }[] }) {
  const me = useMe();
  const router = useRouter();
  const dialog = useRef<HTMLDialogElement>(null);
  const input = useRef<HTMLInputElement>(null);
  const listId = useId();
  const [q, setQ] = useState("");
  const [active, setActive] = useState(0);
  const term = q.trim();

  useEffect(() => {
    const d = dialog.current;
    if (!d) return;
    if (open && !d.open) {
      d.showModal();
      input.current?.focus();
    }
    if (!open && d.open) d.close();
  }, [open]);

  const serverParams = { q: term || undefined, pageSize: 8 };
  const servers = useQuery({ queryKey: keys.servers.list(serverParams), queryFn: () => apiFetch<Page<PublicServer>>(`/servers${qs(serverParams)}`), enabled: open && term.length > 0 });
  const policies = useQuery({
    queryKey: keys.policies.list({ palette: true }),
    queryFn: () => apiFetch<{ items: { id: string; name: string; serverId: string; tenantId: string }[] }>("/policies"),
    enabled: open,
    staleTime: 30_000,
  });
  const fleets = useQuery({ queryKey: ["fleets", "palette"], queryFn: () => apiFetch<{ items: { id: string; name: string }[] }>("/fleets"), enabled: open, staleTime: 30_000 });

  const items = useMemo(() => {
    const t = norm(term);
    const hit = (...s: string[]) => !t || s.some((x) => norm(x).includes(t));
    const tenantName = (id: string) => me.tenants.find((x) => x.id === id)?.name ?? id;
    const out: Item[] = [];
    out.push(
      ...pages
        .filter((p) => hit(p.label))
        .slice(0, t ? 5 : 20)
        .map((p) => ({ group: "Pages" as const, label: p.label, href: p.href })),
    );
    if (t) {
      out.push(...(servers.data?.items ?? []).map((s) => ({ group: "Servers" as const, label: s.name, hint: s.resourceUri, href: `/servers/${s.id}` })));
      out.push(
        ...(policies.data?.items ?? [])
          .filter((p) => hit(p.name, p.id))
          .slice(0, 8)
          .map((p) => ({ group: "Policies" as const, label: p.name, hint: tenantName(p.tenantId), href: `/policies/${p.id}` })),
      );
      out.push(
        ...(fleets.data?.items ?? [])
          .filter((f) => hit(f.name, f.id))
          .slice(0, 5)
          .map((f) => ({ group: "Fleets" as const, label: f.name, href: `/fleets/${f.id}` })),
      );
      out.push(
        ...me.tenants
          .filter((x) => hit(x.name, x.id))
          .slice(0, 5)
          .map((x) => ({ group: "Tenants" as const, label: x.name, href: `/tenants/${x.id}` })),
      );
      if (term.length >= 2 && !/\s/.test(term)) {
        out.push({ group: "Users", label: `Everything user “${term}” delegated`, hint: "grants", href: `/grants/user?id=${encodeURIComponent(term)}` });
        out.push({ group: "Users", label: `Decisions of user “${term}”`, hint: "decision log", href: `/audit?user=${encodeURIComponent(term)}&range=30d` });
        if (term.length >= 8) out.push({ group: "Decisions", label: `Open decision ${term}`, href: `/audit/${encodeURIComponent(term)}` });
      }
    }
    return out;
  }, [term, pages, servers.data, policies.data, fleets.data, me.tenants]);

  const go = (i: Item | undefined) => {
    if (!i) return;
    onClose();
    setQ("");
    router.push(i.href);
  };
  const current = Math.min(active, Math.max(0, items.length - 1));
  const loading = term && (servers.isFetching || policies.isPending);

  return (
    <dialog
      ref={dialog}
      onClose={onClose}
      aria-label="Go to"
      className="mx-auto mt-[12vh] w-[calc(100%-1.5rem)] max-w-xl rounded-lg p-0 shadow-2xl backdrop:bg-slate-900/40"
      data-testid="command-palette"
    >
      <div className="border-b border-slate-200 p-2">
        <input
          ref={input}
          role="combobox"
          aria-expanded="true"
          aria-controls={listId}
          aria-activedescendant={items.length ? `${listId}-${current}` : undefined}
          aria-label="Go to a page, server, policy, fleet, tenant, user or decision id"
          placeholder="Go to… (a name, an id, a user)"
          value={q}
          onChange={(e) => {
            setQ(e.target.value);
            setActive(0);
          }}
          onKeyDown={(e) => {
            if (e.key === "ArrowDown") setActive((a) => Math.min(a + 1, items.length - 1));
            else if (e.key === "ArrowUp") setActive((a) => Math.max(a - 1, 0));
            else if (e.key === "Enter") go(items[current]);
            else return;
            e.preventDefault();
          }}
          className="block w-full rounded-md border-0 px-3 py-2 text-sm text-slate-900 outline-none ring-0 placeholder:text-slate-400"
        />
      </div>
      <ul id={listId} role="listbox" aria-label="Results" className="max-h-[50vh] overflow-y-auto p-1 text-sm">
        {items.map((i, n) => (
          <li
            key={`${i.group}-${i.href}`}
            id={`${listId}-${n}`}
            role="option"
            aria-selected={n === current}
            onMouseEnter={() => setActive(n)}
            onClick={() => go(i)}
            className={cx("flex cursor-pointer items-baseline gap-2 rounded px-3 py-1.5", n === current ? "bg-indigo-50 text-indigo-800" : "text-slate-800")}
          >
            <span className="w-20 shrink-0 text-xs text-slate-500">{i.group}</span>
            <span className="min-w-0 flex-1 truncate">{i.label}</span>
            {i.hint ? <span className="hidden max-w-[40%] truncate text-xs text-slate-500 sm:inline">{i.hint}</span> : null}
          </li>
        ))}
        {!items.length ? <li className="px-3 py-4 text-center text-slate-500">{loading ? "Searching…" : "Nothing matches"}</li> : null}
      </ul>
      <p className="border-t border-slate-200 px-3 py-1.5 text-xs text-slate-500">↑ ↓ to choose · Enter to open · Esc to close · / focuses a page&apos;s search box</p>
    </dialog>
  );
}
