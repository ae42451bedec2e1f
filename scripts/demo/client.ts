/**
 * The demo's MCP client (run by scripts/start.mjs): the official MCP SDK
 * client, getting its tokens from the sandbox authorization server with the
 * client-credentials grant after the 401 → protected resource metadata →
 * authorization server metadata discovery, makes a trickle of calls through
 * the demo agent: mostly allowed, some denied by the demo policies, and now
 * and then one from a client the tenant never approved.
 *
 * Env: DEMO_MCP_URL (the agent's protected MCP URL), DEMO_ISSUER,
 * DEMO_CLIENT_ID / DEMO_CLIENT_SECRET, DEMO_UNAPPROVED_CLIENT_ID /
 * DEMO_UNAPPROVED_CLIENT_SECRET, DEMO_INTERVAL_MS (default 4000).
 * The client secrets are the sandbox's, made up by the start script per run.
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { ClientCredentialsProvider } from "@modelcontextprotocol/sdk/client/auth-extensions.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const need = (name: string) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is required`);
  return v;
};
const mcpUrl = new URL(need("DEMO_MCP_URL"));
const issuer = need("DEMO_ISSUER");
const interval = Math.max(500, Number(process.env.DEMO_INTERVAL_MS ?? 4000) || 4000);
const SCOPE = "tickets:read tickets:write tickets:admin";

type Call = { who: "assistant" | "unapproved"; tool: string; args: Record<string, unknown> };
/** One round of the trickle: what a busy assistant does, with the calls the demo policies stop. */
const script: Call[] = [
  { who: "assistant", tool: "list_tickets", args: { status: "open" } },
  { who: "assistant", tool: "create_ticket", args: { title: "Please raise my salary", project: "payroll", priority: "high" } },
  { who: "assistant", tool: "get_ticket", args: { id: "T-1" } },
  { who: "unapproved", tool: "list_tickets", args: {} },
  { who: "assistant", tool: "create_ticket", args: { title: "Printer on the 3rd floor is out of toner", project: "facilities", priority: "low" } },
  { who: "assistant", tool: "list_tickets", args: { project: "support" } },
  { who: "assistant", tool: "close_ticket", args: { id: "T-2", resolution: "Fixed by restarting" } },
  { who: "assistant", tool: "delete_project", args: { project: "support", confirm: true } },
];

const clients = new Map<Call["who"], Client>();

async function connect(who: Call["who"]): Promise<Client> {
  const have = clients.get(who);
  if (have) return have;
  const [id, secret] = who === "assistant" ? [need("DEMO_CLIENT_ID"), need("DEMO_CLIENT_SECRET")] : [need("DEMO_UNAPPROVED_CLIENT_ID"), need("DEMO_UNAPPROVED_CLIENT_SECRET")];
  const authProvider = new ClientCredentialsProvider({ clientId: id, clientSecret: secret, scope: SCOPE, expectedIssuer: issuer });
  const client = new Client({ name: `mandate-demo-${who}`, version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(mcpUrl, { authProvider }));
  clients.set(who, client);
  return client;
}

async function one(call: Call): Promise<string> {
  try {
    const client = await connect(call.who);
    const r = await client.callTool({ name: call.tool, arguments: call.args });
    return r.isError ? "denied or failed" : "allowed";
  } catch (err) {
    // A refused client (403 on connect) or a broken connection: start over next time.
    const c = clients.get(call.who);
    clients.delete(call.who);
    await c?.close().catch(() => {});
    return `refused (${err instanceof Error ? err.message.slice(0, 120) : "error"})`;
  }
}

let i = 0;
let stopping = false;
const stop = () => {
  stopping = true;
  void Promise.all([...clients.values()].map((c) => c.close().catch(() => {}))).then(() => process.exit(0));
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);

console.log(`[demo client] calling ${mcpUrl.href} every ${interval} ms`);
while (!stopping) {
  const call = script[i++ % script.length]!;
  const outcome = await one(call);
  if (process.env.DEMO_VERBOSE) console.log(`[demo client] ${call.who} ${call.tool}: ${outcome}`);
  await new Promise((r) => setTimeout(r, interval));
}
