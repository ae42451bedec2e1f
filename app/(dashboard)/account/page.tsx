"use client";

import { useMutation } from "@tanstack/react-query";
import { signOut } from "next-auth/react";
import { useMe } from "@/components/shell/context";
import { Button, Card, ErrorBanner, PageHeader, TextField } from "@/components/ui";
import { ApiError, apiFetch } from "@/lib/client/api";

export default function AccountPage() {
  const me = useMe();
  const change = useMutation({
    mutationFn: (body: object) => apiFetch("/me/password", { method: "POST", body }),
    // A password change ends every session, this one included.
    onSuccess: () => signOut({ callbackUrl: "/login" }),
  });
  const err = change.error instanceof ApiError ? change.error : null;
  return (
    <>
      <PageHeader title="Your account" description={me.email} />
      <Card title={me.mustChangePassword ? "Choose your own password" : "Change password"} className="max-w-lg">
        <form
          noValidate
          className="space-y-4"
          onSubmit={(e) => {
            e.preventDefault();
            const d = new FormData(e.currentTarget);
            change.mutate({ currentPassword: d.get("currentPassword"), newPassword: d.get("newPassword") });
          }}
        >
          <TextField label="Current password" name="currentPassword" type="password" autoComplete="current-password" required error={err?.field("currentPassword")} />
          <TextField
            label="New password"
            name="newPassword"
            type="password"
            autoComplete="new-password"
            required
            minLength={12}
            error={err?.field("newPassword")}
            hint="At least 12 characters. You will sign in again with it."
          />
          <ErrorBanner error={err} />
          <Button type="submit" busy={change.isPending}>
            Change password
          </Button>
        </form>
      </Card>
    </>
  );
}
