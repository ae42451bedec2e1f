"use client";

import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { useMe } from "@/components/shell/context";
import { Badge, Button, Card, ConfirmButton, ErrorBanner, PageHeader, TextField } from "@/components/ui";
import { apiFetch } from "@/lib/client/api";

/** What GET /api/v1/admin/demo answers. */
type DemoStatus = { active: false; removed: boolean } | { active: true; tenantId: string; tenantName: string; serverId: string | null; resourceUri: string | null; lastChange: string | null };

const demoKey = ["demo"] as const;

function CopyBlock({ title, value, testId }: { title: string; value: string; testId: string }) {
  const [copied, setCopied] = useState(false);
  return (
    <div className="space-y-1">
      <div className="flex items-center justify-between">
        <h3 className="text-sm font-medium text-slate-800">{title}</h3>
        <Button
          variant="secondary"
          onClick={async () => {
            await navigator.clipboard?.writeText(value).catch(() => {});
            setCopied(true);
            setTimeout(() => setCopied(false), 1500);
          }}
        >
          {copied ? "Copied" : "Copy"}
        </Button>
      </div>
      <pre data-testid={testId} className="overflow-x-auto whitespace-pre rounded bg-slate-900 px-3 py-2 font-mono text-xs text-emerald-300">
        {value}
      </pre>
    </div>
  );
}

/** Copyable client configurations for one protected MCP URL. */
function configs(url: string, name: string) {
  return {
    inspector: `npx @modelcontextprotocol/inspector\n# Transport: Streamable HTTP\n# URL: ${url}\n# Then "Open Auth Settings" → "Quick OAuth Flow" (or just Connect: the 401 starts it)`,
    claudeCode: `claude mcp add --transport http ${name} ${url}\n# then, inside Claude Code: /mcp → ${name} → Authenticate`,
    claudeDesktop: JSON.stringify({ mcpServers: { [name]: { command: "npx", args: ["-y", "mcp-remote", url] } } }, null, 2),
    sdk: `import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

// authProvider: your OAuthClientProvider (authorization code + PKCE for a user,
// or ClientCredentialsProvider from "@modelcontextprotocol/sdk/client/auth-extensions.js" for a service).
const transport = new StreamableHTTPClientTransport(new URL("${url}"), { authProvider });
const client = new Client({ name: "my-app", version: "1.0.0" });
await client.connect(transport); // on 401: discovery, then the sign-in and consent flow
console.log(await client.listTools());`,
  };
}

export function ConnectClient() {
  const me = useMe();
  const qc = useQueryClient();
  const demo = useQuery({ queryKey: demoKey, queryFn: () => apiFetch<DemoStatus>("/demo") });
  const [custom, setCustom] = useState("");
  const demoUrl = demo.data?.active ? demo.data.resourceUri : null;
  const url = custom.trim() || demoUrl || "https://mcp.example.com/mcp";
  const c = configs(url, demoUrl && !custom.trim() ? "mandate-demo" : "mandate");

  return (
    <>
      <PageHeader
        title="Connect a client"
        description="Point an MCP client at the protected MCP URL: the agent in front of the server. It answers 401 until the client holds a token it accepts, and every call is then decided by the published policies."
      />
      <ErrorBanner error={demo.error} />
      {demo.data?.active ? (
        <Card
          title={
            <span className="flex items-center gap-2">
              Live demo <Badge color="amber">sample data</Badge>
            </span>
          }
          actions={
            me.globalRole === "owner" ? (
              <ConfirmButton
                label="Remove the demo"
                title="Remove the demo?"
                body={
                  <p>
                    This deletes the tenant <strong>{demo.data.tenantName}</strong> with its server, catalogue, policies, fleet, agent, grants, clients and decisions, and stops the demo client. It is
                    recorded in the admin trail and the demo is not seeded again on the next start.
                  </p>
                }
                confirmLabel="Remove the demo"
                onConfirm={async () => {
                  await apiFetch("/demo", { method: "DELETE" });
                  await qc.invalidateQueries();
                }}
              />
            ) : undefined
          }
        >
          <div className="space-y-2 text-sm text-slate-700">
            <p>
              <code>npm start</code> runs a sample ticket desk behind a local agent, the sandbox authorization server, and a client that calls it every few seconds: most calls are allowed, a payroll
              ticket and a project deletion are denied by the demo policies, and one client the tenant never approved is refused. Watch them in the Overview, the decision log, Grants &amp; clients and
              Fleets.
            </p>
            <p>
              Protected MCP URL: <code data-testid="demo-url">{demo.data.resourceUri}</code>
            </p>
          </div>
        </Card>
      ) : demo.data ? (
        <Card title="No demo running">
          <p className="text-sm text-slate-700">
            {demo.data.removed ? "The demo was removed." : "The demo is off (MANDATE_DEMO=0) or not set up."} Use the resource URI of one of your servers (Servers → a server → its resource URI), where
            its agent listens.
          </p>
        </Card>
      ) : null}

      <Card title="Configurations" className="mt-6">
        <div className="space-y-4">
          <TextField
            label="Protected MCP URL"
            placeholder={demoUrl ?? "https://mcp.example.com/mcp"}
            value={custom}
            onChange={(e) => setCustom(e.target.value)}
            hint="Leave empty to use the demo's URL."
          />
          <CopyBlock title="MCP Inspector" value={c.inspector} testId="config-inspector" />
          <CopyBlock title="Claude Code" value={c.claudeCode} testId="config-claude-code" />
          <CopyBlock title="Claude Desktop (claude_desktop_config.json, through mcp-remote)" value={c.claudeDesktop} testId="config-claude-desktop" />
          <CopyBlock title="Official MCP SDK (TypeScript)" value={c.sdk} testId="config-sdk" />
        </div>
      </Card>

      <Card title="What the client goes through" className="mt-6">
        <ol className="list-decimal space-y-2 pl-5 text-sm text-slate-700">
          <li>
            <strong>401.</strong> The first request has no token: the agent answers <code>401</code> with{" "}
            <code>WWW-Authenticate: Bearer resource_metadata=&quot;…/.well-known/oauth-protected-resource/mcp&quot;</code> and the scopes the server supports.
          </li>
          <li>
            <strong>Discovery.</strong> The client reads the protected resource metadata (RFC 9728): the resource URI and its authorization server, then that server&apos;s metadata (RFC 8414). It
            registers itself if it has no client id (dynamic registration, or a client ID metadata document).
          </li>
          <li>
            <strong>Sign-in and consent.</strong> The browser opens the authorization server; the user signs in and consents to the scopes, for this resource only (RFC 8707). The sandbox server of the
            demo signs in a test account and consents at once.
          </li>
          <li>
            <strong>Token.</strong> The client exchanges the code (PKCE) for an access token whose audience is the protected MCP URL and retries. The agent checks the issuer the tenant trusts, the
            audience, expiry and scopes.
          </li>
          <li>
            <strong>Decisions.</strong> Every call is decided against the published bundle. In the demo tenant client approval is on: a new client is refused until an admin approves it under Grants
            &amp; clients, where it shows as awaiting approval.
          </li>
        </ol>
      </Card>
    </>
  );
}
