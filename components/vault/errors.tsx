"use client";

import { ApiError } from "@/lib/client/api";

/*
 * Errors in the vault's forms, as sentences that say what to fix. Field
 * issues (zod's and the vault's own) are put next to their field and summed
 * up in the banner with the field's label; other errors (conflicts, missing
 * permission, rate limits, a server's problem document, a network failure)
 * get one sentence. Nothing a user typed is ever repeated: only labels and
 * the server's messages, which never echo values (docs/vault.md).
 */

/** Field path → the label the form shows for it. */
export type FieldLabels = Record<string, string>;

export const baseLabels: FieldLabels = {
  serverId: "Server",
  tenantId: "Tenant",
  name: "Name",
  kind: "Kind",
  placement: "Header",
  "placement.in": "Where it goes",
  "placement.name": "Header or query parameter",
  oauth: "OAuth settings",
  "oauth.tokenUrl": "Token endpoint",
  "oauth.clientId": "Client id",
  "oauth.audience": "Audience",
  "oauth.scope": "Scope",
  "oauth.authMethod": "Client authentication",
  "oauth.authorizationUrl": "Authorization endpoint",
  "oauth.issuer": "Issuer",
  secret: "Secret",
  "secret.username": "Username",
  "secret.password": "Password",
  graceSeconds: "Grace period",
  activateAt: "Activation time",
  owner: "Owner",
  notes: "Notes",
  rotationIntervalDays: "Rotation interval",
  version: "Version",
  replacing: "Current version",
};

/** zod's generic wording → what to do, for the messages a form can meet (the vault's own messages are already sentences). */
function plain(message: string): string {
  const m = message.trim();
  let r: RegExpExecArray | null;
  if (/^Invalid input: expected \w+, received (null|undefined)$/.test(m) || /^Required$/.test(m)) return "is required";
  if ((r = /^Too small: expected string to have >=1 characters?$/.exec(m))) return "must not be empty";
  if ((r = /^Too small: expected string to have >=(\d+) characters?$/.exec(m))) return `must be at least ${r[1]} characters`;
  if ((r = /^Too big: expected string to have <=(\d+) characters?$/.exec(m))) return `must be at most ${r[1]} characters`;
  if ((r = /^Too small: expected number to be >=(-?\d+)$/.exec(m))) return `must be ${r[1]} or more`;
  if ((r = /^Too big: expected number to be <=(-?\d+)$/.exec(m))) return `must be at most ${r[1]}`;
  if (/^Invalid input: expected number, received NaN$/.test(m)) return "must be a number";
  if (/^Invalid input: expected int, received number$/.test(m)) return "must be a whole number";
  if (/^Invalid (input|option)/.test(m)) return "is not valid";
  if (/^Unrecognized key/.test(m)) return "is not expected here";
  return m;
}

const sentence = (s: string) => {
  const t = s.trim();
  if (!t) return "";
  const first = t[0]!.toUpperCase() + t.slice(1);
  return /[.!?]$/.test(first) ? first : `${first}.`;
};

/** The message for one field (and its sub-fields), as a sentence naming the field: "API key must not be empty." */
export function fieldError(error: unknown, path: string, labels: FieldLabels = baseLabels): string | undefined {
  if (!(error instanceof ApiError)) return undefined;
  const issue = error.issues.find((i) => i.path === path || i.path.startsWith(`${path}.`));
  if (!issue) return undefined;
  return sentence(`${labels[issue.path] ?? labels[path] ?? issue.path} ${plain(issue.message)}`);
}

/** One sentence for any error the vault forms meet: what went wrong and what to do. */
export function describeError(error: unknown, labels: FieldLabels = baseLabels): string {
  if (!error) return "";
  if (error instanceof ApiError) {
    if (error.issues.length && (error.code === "validation_failed" || error.status === 422)) {
      const parts = [...new Map(error.issues.map((i) => [i.path, `${labels[i.path] ?? (i.path || "The request")} ${plain(i.message)}`])).values()];
      return sentence(`Fix ${parts.length === 1 ? "this" : `these ${parts.length} things`} and try again: ${parts.join("; ")}`);
    }
    const msg = error.message.trim();
    switch (error.status) {
      case 401:
        return "Your session has ended: sign in again.";
      case 403:
        return sentence(msg || "You do not have permission to do this here");
      case 404:
        return sentence(msg ? `${msg}: it may have been removed, or you cannot see it` : "Not found");
      case 413:
        return "The request is too large: shorten the secret or notes.";
      case 429:
        return sentence(msg || "Too many attempts: wait a minute, then try again");
    }
    if (error.status >= 500) return sentence(msg && !/^Request failed/.test(msg) ? msg : `Mandate could not complete this (HTTP ${error.status}); try again, and tell an operator if it persists`);
    return sentence(msg || `The request failed (HTTP ${error.status})`);
  }
  if (error instanceof TypeError) return "Mandate could not be reached: check your connection and try again.";
  return sentence(error instanceof Error && error.message ? error.message : "Something went wrong; try again");
}

/** The form's error banner: a sentence, never an empty box. */
export function FormError({ error, labels }: { error: unknown; labels?: FieldLabels }) {
  const text = describeError(error, labels);
  if (!text) return null;
  return (
    <div role="alert" data-testid="form-error" className="rounded-md bg-rose-50 px-3 py-2 text-sm text-rose-800 ring-1 ring-inset ring-rose-200">
      {text}
    </div>
  );
}

/** A local (not yet sent) problem with one field, in the same shape as the API's, so the form shows both alike. */
export const localIssue = (path: string, message: string) => new ApiError(422, "validation_failed", message, [{ path, message }]);
