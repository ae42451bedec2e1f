"use client";

import { signIn } from "next-auth/react";
import { useState } from "react";
import { Button, ErrorBanner, TextField } from "@/components/ui";

export function LoginForm({ callbackUrl, initialError, oidcName }: { callbackUrl: string; initialError?: string; oidcName: string | null }) {
  const [error, setError] = useState<string | undefined>(initialError);
  const [busy, setBusy] = useState(false);
  return (
    <div className="space-y-4 rounded-lg bg-white p-6 shadow-sm ring-1 ring-slate-200">
      <form
        className="space-y-4"
        onSubmit={async (e) => {
          e.preventDefault();
          const form = new FormData(e.currentTarget);
          setBusy(true);
          setError(undefined);
          const res = await signIn("credentials", { email: form.get("email"), password: form.get("password"), redirect: false, callbackUrl });
          setBusy(false);
          if (res?.ok && !res.error) window.location.href = callbackUrl;
          else setError(res?.error && res.error !== "CredentialsSignin" ? res.error : "Wrong e-mail or password.");
        }}
      >
        <TextField label="E-mail" name="email" type="email" autoComplete="username" required autoFocus />
        <TextField label="Password" name="password" type="password" autoComplete="current-password" required />
        {error ? <ErrorBanner error={new Error(error)} /> : null}
        <Button type="submit" busy={busy} className="w-full">
          Sign in
        </Button>
      </form>
      {oidcName ? (
        <>
          <div className="relative text-center text-xs text-slate-400">
            <span className="bg-white px-2">or</span>
          </div>
          <Button variant="secondary" className="w-full" onClick={() => signIn("oidc", { callbackUrl })}>
            Continue with {oidcName}
          </Button>
        </>
      ) : null}
    </div>
  );
}
