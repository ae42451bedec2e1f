"use client";

import { signIn } from "next-auth/react";
import { useState, useSyncExternalStore } from "react";
import { Button, ErrorBanner, TextField } from "@/components/ui";

const onHashChange = (cb: () => void) => {
  window.addEventListener("hashchange", cb);
  return () => window.removeEventListener("hashchange", cb);
};

export function InviteForm({ oidcName }: { oidcName: string | null }) {
  // null while rendering on the server (there is no fragment there).
  const token = useSyncExternalStore(
    onHashChange,
    () => decodeURIComponent(window.location.hash.slice(1)),
    () => null,
  );
  const [error, setError] = useState<string | undefined>();
  const [done, setDone] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  if (done) {
    return (
      <div className="space-y-4 rounded-lg bg-white p-6 shadow-sm ring-1 ring-slate-200">
        <p className="text-sm text-slate-700">Your password is set for {done}.</p>
        <Button className="w-full" onClick={() => (window.location.href = "/login")}>
          Sign in
        </Button>
      </div>
    );
  }
  return (
    <div className="space-y-4 rounded-lg bg-white p-6 shadow-sm ring-1 ring-slate-200">
      {token === "" ? <ErrorBanner error={new Error("This link has no invitation in it. Open the whole link you were given.")} /> : null}
      <form
        noValidate
        className="space-y-4"
        onSubmit={async (e) => {
          e.preventDefault();
          const form = new FormData(e.currentTarget);
          const password = String(form.get("password") ?? "");
          if (password !== String(form.get("confirm") ?? "")) return setError("The two passwords differ.");
          if (password.length < 12) return setError("Choose at least 12 characters.");
          setBusy(true);
          setError(undefined);
          try {
            const res = await fetch("/api/auth/invitation", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ token, password }) });
            const body = (await res.json().catch(() => ({}))) as { email?: string; error?: { message?: string } };
            if (res.ok && body.email) {
              // The secret has done its job: drop it from the address bar and history.
              window.history.replaceState(null, "", "/invite");
              setDone(body.email);
            } else setError(body.error?.message ?? "The invitation could not be accepted.");
          } finally {
            setBusy(false);
          }
        }}
      >
        <TextField label="New password" name="password" type="password" autoComplete="new-password" required minLength={12} hint="At least 12 characters." />
        <TextField label="Repeat it" name="confirm" type="password" autoComplete="new-password" required minLength={12} />
        {error ? <ErrorBanner error={new Error(error)} /> : null}
        <Button type="submit" busy={busy} className="w-full" disabled={!token}>
          Set password
        </Button>
      </form>
      {oidcName ? (
        <>
          <div className="relative text-center text-xs text-slate-400">
            <span className="bg-white px-2">or, if your organisation uses it</span>
          </div>
          <Button variant="secondary" className="w-full" onClick={() => signIn("oidc", { callbackUrl: "/" })}>
            Continue with {oidcName}
          </Button>
        </>
      ) : null}
    </div>
  );
}
