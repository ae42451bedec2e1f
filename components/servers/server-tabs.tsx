"use client";

import Link from "next/link";
import { usePathname } from "next/navigation";
import { cx } from "@/components/ui";
import { usePendingCount } from "./server-context";

/** Overview / Tools / Scopes tabs of one server; the active one carries aria-current="page". */
export function ServerTabs({ serverId }: { serverId: string }) {
  const pathname = usePathname();
  const pending = usePendingCount(serverId);
  const base = `/servers/${encodeURIComponent(serverId)}`;
  const tabs = [
    { href: base, label: "Overview", active: pathname === base || pathname === `${base}/` },
    { href: `${base}/tools`, label: "Tools", active: pathname.startsWith(`${base}/tools`), count: pending },
    { href: `${base}/scopes`, label: "Scopes", active: pathname.startsWith(`${base}/scopes`) },
    { href: `${base}/masking`, label: "Masking", active: pathname.startsWith(`${base}/masking`) },
  ];
  return (
    <nav aria-label="Server sections" className="mb-6 border-b border-slate-200">
      <ul className="-mb-px flex gap-6">
        {tabs.map((t) => (
          <li key={t.href}>
            <Link
              href={t.href}
              aria-current={t.active ? "page" : undefined}
              className={cx(
                "inline-flex items-center gap-2 border-b-2 px-1 pb-2.5 text-sm font-medium focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-indigo-600",
                t.active ? "border-indigo-600 text-indigo-700" : "border-transparent text-slate-600 hover:border-slate-300 hover:text-slate-800",
              )}
            >
              {t.label}
              {t.count ? (
                <span
                  className="rounded-full bg-amber-100 px-1.5 py-0.5 text-xs font-semibold text-amber-800"
                  title={`${t.count} catalogue ${t.count === 1 ? "entry" : "entries"} (tools, resources, templates, prompts) pending review`}
                >
                  {t.count}
                  <span className="sr-only"> pending review</span>
                </span>
              ) : null}
            </Link>
          </li>
        ))}
      </ul>
    </nav>
  );
}
