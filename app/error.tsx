"use client";

import Link from "next/link";

export default function ErrorPage({ error, reset }: { error: Error & { digest?: string }; reset: () => void }) {
  return (
    <main className="mx-auto max-w-lg px-6 py-24 text-center">
      <p className="text-sm font-semibold text-rose-600">Error</p>
      <h1 className="mt-2 text-2xl font-semibold text-slate-900">This page could not be shown</h1>
      <p className="mt-2 text-sm text-slate-600">Something went wrong on our side{error.digest ? ` (reference ${error.digest})` : ""}. Nothing you entered was lost from the server; try again.</p>
      <div className="mt-6 flex justify-center gap-3">
        <button onClick={reset} className="rounded-md bg-indigo-600 px-3 py-1.5 text-sm font-medium text-white">
          Try again
        </button>
        <Link href="/" className="rounded-md px-3 py-1.5 text-sm font-medium text-slate-700 ring-1 ring-slate-300">
          Go to overview
        </Link>
      </div>
    </main>
  );
}
