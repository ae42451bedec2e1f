/** RFC 9728 Protected Resource Metadata as an agent serves it for one MCP server. */
export interface ProtectedResourceMetadata {
  resource: string;
  authorization_servers: string[];
  scopes_supported: string[];
  bearer_methods_supported: ["header"];
  resource_name?: string;
}

export function protectedResourceMetadata(server: {
  resourceUri: string;
  name: string;
  scopes: string[];
  issuers: { issuer: string }[];
}): ProtectedResourceMetadata {
  return {
    resource: server.resourceUri,
    authorization_servers: [...new Set(server.issuers.map((i) => i.issuer))],
    scopes_supported: server.scopes,
    // Tokens in the query string or body are never accepted.
    bearer_methods_supported: ["header"],
    resource_name: server.name,
  };
}
