"use client";

import { Suspense } from "react";
import { SimulatorView } from "@/components/policies/simulator-view";

export default function SimulatorPage() {
  return (
    <Suspense fallback={<p className="text-sm text-slate-500">Loading the simulator…</p>}>
      <SimulatorView />
    </Suspense>
  );
}
