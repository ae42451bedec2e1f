"use client";

import { useEffect, useState } from "react";
import { THEME_KEY as KEY } from "./theme-script";

export type ThemeChoice = "system" | "light" | "dark";

function apply(choice: ThemeChoice) {
  const dark = choice === "dark" || (choice === "system" && window.matchMedia("(prefers-color-scheme: dark)").matches);
  document.documentElement.classList.toggle("dark", dark);
}

/** Light, dark, or the system's setting (followed live), remembered in this browser. */
export function ThemeToggle() {
  const [choice, setChoice] = useState<ThemeChoice>("system");
  useEffect(() => {
    const saved = window.localStorage.getItem(KEY);
    // eslint-disable-next-line react-hooks/set-state-in-effect -- restoring a browser-only preference after hydration
    if (saved === "light" || saved === "dark") setChoice(saved);
  }, []);
  useEffect(() => {
    apply(choice);
    if (choice !== "system") return;
    const mq = window.matchMedia("(prefers-color-scheme: dark)");
    const on = () => apply("system");
    mq.addEventListener("change", on);
    return () => mq.removeEventListener("change", on);
  }, [choice]);
  return (
    <label className="flex items-center gap-2 text-xs text-slate-600">
      Theme
      <select
        value={choice}
        onChange={(e) => {
          const c = e.target.value as ThemeChoice;
          setChoice(c);
          if (c === "system") window.localStorage.removeItem(KEY);
          else window.localStorage.setItem(KEY, c);
        }}
        className="rounded border-0 bg-white py-0.5 pl-1.5 pr-6 text-xs text-slate-800 ring-1 ring-inset ring-slate-300"
      >
        <option value="system">System</option>
        <option value="light">Light</option>
        <option value="dark">Dark</option>
      </select>
    </label>
  );
}
