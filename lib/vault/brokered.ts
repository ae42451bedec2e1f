import type { CredentialKind, CredentialPlacement, OAuthClientConfig } from "@/db/schema";
import type { FieldIssue } from "@/lib/errors";

/**
 * What an oauth_user_brokered entry (brokered per-user OAuth, issue 13,
 * docs/upstreams.md) needs beyond any OAuth entry: the upstream AS's
 * authorization endpoint (the control plane runs the code flow there), and
 * the Authorization header as its placement (the user's access token goes
 * there). Only this kind may name an authorization endpoint or issuer.
 */
export function brokeredEntryIssues(kind: CredentialKind, oauth: Partial<OAuthClientConfig> | undefined, placement: CredentialPlacement | undefined): FieldIssue[] {
  const issues: FieldIssue[] = [];
  if (kind !== "oauth_user_brokered") {
    if (oauth?.authorizationUrl) issues.push({ path: "oauth.authorizationUrl", message: "only a brokered per-user OAuth entry has an authorization endpoint" });
    if (oauth?.issuer) issues.push({ path: "oauth.issuer", message: "only a brokered per-user OAuth entry names an issuer" });
    return issues;
  }
  if (oauth && !oauth.authorizationUrl && !oauth.issuer)
    issues.push({ path: "oauth.authorizationUrl", message: "is required for brokered per-user OAuth: the upstream AS authorization endpoint (or its issuer, to discover it)" });
  if (placement && (placement.in !== "header" || placement.name.toLowerCase() !== "authorization"))
    issues.push({ path: "placement", message: "a user's access token goes into the Authorization header" });
  return issues;
}
