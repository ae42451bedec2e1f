import { DPOP_ALGS } from "./dpop";

/** RFC 9728 Protected Resource Metadata as an agent serves it for one MCP server. */
export interface ProtectedResourceMetadata {
  resource: string;
  authorization_servers: string[];
  scopes_supported: string[];
  bearer_methods_supported: ["header"];
  resource_name?: string;
  /** RFC 9728 §2: present when the server accepts DPoP (RFC 9449). */
  dpop_signing_alg_values_supported?: string[];
  dpop_bound_access_tokens_required?: boolean;
}

export function protectedResourceMetadata(server: { resourceUri: string; name: string; scopes: string[]; issuers: { issuer: string }[]; dpop?: string }): ProtectedResourceMetadata {
  return {
    resource: server.resourceUri,
    authorization_servers: [...new Set(server.issuers.map((i) => i.issuer))],
    scopes_supported: server.scopes,
    // Tokens in the query string or body are never accepted.
    bearer_methods_supported: ["header"],
    resource_name: server.name,
    ...(server.dpop === "allowed" || server.dpop === "required" ? { dpop_signing_alg_values_supported: [...DPOP_ALGS] } : {}),
    ...(server.dpop === "required" ? { dpop_bound_access_tokens_required: true } : {}),
  };
}
