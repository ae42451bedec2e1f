"use client";

import Link from "next/link";
import { usePathname } from "next/navigation";
import { signOut } from "next-auth/react";
import { useEffect, useState, type ReactNode } from "react";
import { cx } from "@/components/ui";
import { CommandPalette } from "./command-palette";
import { MeContext, type ShellMe, useTenantSelection, TenantContext } from "./context";
import { ThemeToggle } from "./theme";

const nav = [
  { href: "/", label: "Overview" },
  { href: "/servers", label: "Servers" },
  { href: "/policies", label: "Policies" },
  { href: "/simulator", label: "Simulator" },
  { href: "/fleets", label: "Fleets & bundles" },
  { href: "/audit", label: "Decision log" },
  { href: "/vault", label: "Credential vault" },
  { href: "/grants", label: "Grants & clients" },
  { href: "/approvals", label: "Approvals" },
  { href: "/connections", label: "Connections" },
  { href: "/least-privilege", label: "Least privilege" },
  { href: "/tenants", label: "Tenants" },
  { href: "/trail", label: "Admin trail" },
  { href: "/connect", label: "Connect a client" },
  { href: "/settings/tokens", label: "API tokens" },
];

export function Shell({ me, children }: { me: ShellMe; children: ReactNode }) {
  const pathname = usePathname();
  const selection = useTenantSelection(me.tenants);
  const items = me.globalRole === "owner" || me.globalRole === "auditor" ? [...nav, { href: "/settings/users", label: "Users" }] : nav;
  // Below the lg breakpoint the navigation is a drawer opened from the top bar; it closes on a link or Escape.
  const [open, setOpen] = useState(false);
  useEffect(() => {
    if (!open) return;
    const onKey = (e: KeyboardEvent) => e.key === "Escape" && setOpen(false);
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [open]);
  // Ctrl/⌘-K opens the palette anywhere; "/" focuses the page's search box unless one is typing.
  const [palette, setPalette] = useState(false);
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if ((e.metaKey || e.ctrlKey) && !e.altKey && e.key.toLowerCase() === "k") {
        e.preventDefault();
        setOpen(false);
        setPalette(true);
        return;
      }
      if (e.key !== "/" || e.metaKey || e.ctrlKey || e.altKey) return;
      const t = e.target as HTMLElement | null;
      if (t && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName) || t.closest("dialog[open]"))) return;
      const box = document.querySelector<HTMLInputElement>('main input[type="search"]');
      if (!box) return;
      e.preventDefault();
      box.focus();
      box.select();
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, []);
  const paletteButton = (
    <button
      type="button"
      onClick={() => (setOpen(false), setPalette(true))}
      className="flex w-full items-center justify-between gap-2 rounded-md px-2 py-1.5 text-left text-sm text-slate-500 ring-1 ring-inset ring-slate-300 hover:bg-slate-50"
      aria-keyshortcuts="Control+K Meta+K"
    >
      <span>Go to…</span>
      <kbd className="rounded bg-slate-100 px-1 font-sans text-[11px] text-slate-600">Ctrl K</kbd>
    </button>
  );
  return (
    <MeContext.Provider value={me}>
      <TenantContext.Provider value={selection}>
        <div className="flex min-h-screen flex-col lg:flex-row">
          <header className="sticky top-0 z-30 flex items-center gap-3 border-b border-slate-200 bg-white px-3 py-2 lg:hidden">
            <button
              type="button"
              aria-label={open ? "Close navigation" : "Open navigation"}
              aria-expanded={open}
              aria-controls="main-navigation"
              onClick={() => setOpen((o) => !o)}
              className="inline-flex h-9 w-9 items-center justify-center rounded-md text-slate-700 ring-1 ring-inset ring-slate-300 hover:bg-slate-100 focus-visible:outline-2 focus-visible:outline-indigo-600"
            >
              <svg viewBox="0 0 20 20" className="h-5 w-5" fill="none" stroke="currentColor" strokeWidth="1.8" aria-hidden>
                {open ? <path d="M5 5l10 10M15 5L5 15" /> : <path d="M3 5h14M3 10h14M3 15h14" />}
              </svg>
            </button>
            <div className="flex h-7 w-7 items-center justify-center rounded-md bg-indigo-600 text-sm font-bold text-white">M</div>
            <span className="min-w-0 flex-1 truncate text-sm font-semibold text-slate-900">{me.tenants.find((t) => t.id === selection.tenantId)?.name ?? "All tenants"}</span>
            <button
              type="button"
              onClick={() => setPalette(true)}
              aria-label="Go to…"
              className="inline-flex h-9 w-9 items-center justify-center rounded-md text-slate-700 ring-1 ring-inset ring-slate-300 hover:bg-slate-100"
            >
              <svg viewBox="0 0 20 20" className="h-4 w-4" fill="none" stroke="currentColor" strokeWidth="1.8" aria-hidden>
                <circle cx="8.5" cy="8.5" r="5.5" />
                <path d="M13 13l4 4" />
              </svg>
            </button>
          </header>
          {open ? <div className="fixed inset-0 z-30 bg-slate-900/40 lg:hidden" aria-hidden onClick={() => setOpen(false)} /> : null}
          <aside
            id="main-navigation"
            className={cx(
              "w-64 shrink-0 flex-col overflow-y-auto border-r border-slate-200 bg-white lg:sticky lg:top-0 lg:flex lg:h-screen lg:w-60",
              open ? "fixed inset-y-0 left-0 z-40 flex shadow-xl" : "hidden",
            )}
          >
            <div className="flex items-center gap-2 px-4 py-4">
              <div className="flex h-8 w-8 items-center justify-center rounded-md bg-indigo-600 font-bold text-white">M</div>
              <span className="font-semibold text-slate-900">Mandate</span>
            </div>
            <div className="px-3 pb-3">{paletteButton}</div>
            <div className="px-3 pb-3">
              <label htmlFor="tenant-switcher" className="mb-1 block text-xs font-medium uppercase tracking-wide text-slate-500">
                Tenant
              </label>
              <select
                id="tenant-switcher"
                value={selection.tenantId ?? ""}
                onChange={(e) => selection.setTenantId(e.target.value || null)}
                className="block w-full rounded-md border-0 px-2 py-1.5 text-sm ring-1 ring-inset ring-slate-300 focus:ring-2 focus:ring-indigo-600"
              >
                <option value="">All tenants</option>
                {me.tenants.map((t) => (
                  <option key={t.id} value={t.id}>
                    {t.name}
                    {t.status === "disabled" ? " (disabled)" : ""}
                  </option>
                ))}
              </select>
            </div>
            <nav className="flex-1 space-y-0.5 px-2" aria-label="Main">
              {items.map((n) => {
                const active = n.href === "/" ? pathname === "/" : pathname.startsWith(n.href);
                return (
                  <Link
                    key={n.href}
                    href={n.href}
                    aria-current={active ? "page" : undefined}
                    onClick={() => setOpen(false)}
                    className={cx("block rounded-md px-3 py-2 text-sm font-medium lg:py-1.5", active ? "bg-indigo-50 text-indigo-700" : "text-slate-700 hover:bg-slate-100")}
                  >
                    {n.label}
                  </Link>
                );
              })}
            </nav>
            <div className="border-t border-slate-200 px-4 py-3 text-sm">
              <div className="truncate font-medium text-slate-900" title={me.email}>
                {me.email}
              </div>
              <div className="text-xs text-slate-500">{me.globalRole === "member" ? "Tenant member" : me.globalRole === "owner" ? "Owner" : "Auditor"}</div>
              <div className="mt-2">
                <ThemeToggle />
              </div>
              <div className="mt-2 flex gap-3 text-xs">
                <Link href="/account" className="text-indigo-700 hover:underline" onClick={() => setOpen(false)}>
                  Account
                </Link>
                <button type="button" className="text-slate-600 hover:underline" onClick={() => signOut({ callbackUrl: "/login" })}>
                  Sign out
                </button>
              </div>
            </div>
          </aside>
          <main className="min-w-0 flex-1 px-3 py-4 sm:px-6 lg:px-8 lg:py-6">
            {me.mustChangePassword && pathname !== "/account" ? (
              <div role="alert" className="mb-4 rounded-md bg-amber-50 px-3 py-2 text-sm text-amber-900 ring-1 ring-amber-200">
                You signed in with a one-time password.{" "}
                <Link href="/account" className="font-medium underline">
                  Choose your own password
                </Link>{" "}
                before you continue.
              </div>
            ) : null}
            {children}
          </main>
          <CommandPalette open={palette} onClose={() => setPalette(false)} pages={items} />
        </div>
      </TenantContext.Provider>
    </MeContext.Provider>
  );
}
