/**
 * The /grants components rendered to HTML with React's server renderer and a
 * query cache holding API-shaped answers: rows, usage, statuses, and the
 * buttons an auditor gets disabled (what Playwright sees, without a browser).
 */
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { createElement, type ReactNode } from "react";
import { renderToString } from "react-dom/server";
import { describe, expect, it } from "vitest";
import { ClientsTable } from "@/components/grants/clients-table";
import { GrantsTable } from "@/components/grants/grants-table";
import { grantKeys, type ClientRow, type GrantRow, type RevocationRow } from "@/components/grants/queries";
import { RevocationsTable } from "@/components/grants/revocations-table";
import { MeContext, type ShellMe } from "@/components/shell/context";
import { keys } from "@/lib/client/api";

const tenantId = "ten_00000000000000000000000000000001";
const grant = (over: Partial<GrantRow>): GrantRow => ({
  id: "grt_1",
  tenantId,
  serverId: "srv_1",
  serverName: "Tickets",
  userId: "alice",
  clientId: "https://app.example/client.json",
  clientName: "Example App",
  scopes: ["tickets:read"],
  source: "learned",
  calls: 1234,
  firstSeenAt: "2026-11-01T10:00:00.000Z",
  lastSeenAt: "2026-11-02T10:00:00.000Z",
  status: "active",
  revokedAt: null,
  revokedBy: null,
  ...over,
});

function render(me: ShellMe, fill: (qc: QueryClient) => void, node: ReactNode): string {
  const qc = new QueryClient({ defaultOptions: { queries: { staleTime: Infinity, retry: false } } });
  fill(qc);
  return renderToString(createElement(QueryClientProvider, { client: qc }, createElement(MeContext.Provider, { value: me }, node)));
}
const as = (role: "admin" | "auditor"): ShellMe => ({ email: "x@test", globalRole: "member", mustChangePassword: false, tenants: [{ id: tenantId, name: "Acme", status: "active", role }] });
const noFilter = { user: "", client: "", server: "" };
const page = <T>(items: T[]) => ({ pages: [{ items, nextCursor: null }], pageParams: [undefined] });

describe("grants UI", () => {
  const fillGrants = (qc: QueryClient) => {
    qc.setQueryData(grantKeys.list({ tenantId }), page([grant({}), grant({ id: "grt_2", userId: "bob", status: "revoked", revokedAt: "2026-11-03T10:00:00.000Z", revokedBy: "admin@test" })]));
    qc.setQueryData(keys.servers.list({ tenantId, page: 1, pageSize: 100 }), { items: [], total: 0, page: 1, pageSize: 100 });
  };

  it("lists grants with usage and status; admins get an enabled Revoke on active grants only", () => {
    const html = render(as("admin"), fillGrants, createElement(GrantsTable, { tenantId, filter: noFilter, onFilter: () => {} }));
    expect(html).toContain('data-testid="grant-row-alice"');
    expect(html).toContain("Example App");
    expect(html).toContain("1,234");
    expect(html).toContain("tickets:read");
    expect(html).toMatch(/grant-row-bob.*revoked/s);
    expect(html.match(/data-testid="revoke-grt_\d"/g)).toEqual(['data-testid="revoke-grt_1"']);
    expect(html).not.toMatch(/<button[^>]*disabled[^>]*data-testid="revoke-grt_1"/);
    // One selection box per active grant, plus "select all"; the user links to their own page.
    expect(html.match(/aria-label="Select the grant of [^"]*"/g)).toEqual(['aria-label="Select the grant of alice to Example App"']);
    expect(html).toContain("Select every active grant shown");
    expect(html).toContain('href="/grants/user?id=alice"');
  });

  it("the one-user view hides the user filter and locks the list to that user", () => {
    const html = render(
      as("admin"),
      (qc) => {
        qc.setQueryData(grantKeys.list({ userId: "alice" }), page([grant({})]));
        qc.setQueryData(keys.servers.list({ page: 1, pageSize: 100 }), { items: [], total: 0, page: 1, pageSize: 100 });
      },
      createElement(GrantsTable, { tenantId: null, filter: { ...noFilter, user: "alice" }, onFilter: () => {}, lockUser: true }),
    );
    expect(html).toContain('data-testid="grant-row-alice"');
    expect(html).not.toContain('placeholder="User (exact id)"');
    expect(html).not.toContain("/grants/user?id=");
  });

  it("disables Revoke for auditors, with the reason", () => {
    const html = render(as("auditor"), fillGrants, createElement(GrantsTable, { tenantId, filter: noFilter, onFilter: () => {} }));
    expect(html).toMatch(/<button[^>]*disabled[^>]*title="Your role in this tenant can read grants but not revoke them"[^>]*data-testid="revoke-grt_1"/);
    expect(html).not.toContain("Select the grant of");
  });

  it("shows an empty state that says where grants come from", () => {
    const html = render(
      as("admin"),
      (qc) => {
        qc.setQueryData(grantKeys.list({ tenantId }), page([]));
        qc.setQueryData(keys.servers.list({ tenantId, page: 1, pageSize: 100 }), { items: [], total: 0, page: 1, pageSize: 100 });
      },
      createElement(GrantsTable, { tenantId, filter: noFilter, onFilter: () => {} }),
    );
    expect(html).toContain("No delegated grant yet");
  });

  it("lists clients with the approval switch; auditors cannot flip it", () => {
    const client: ClientRow = {
      id: "ocl_1",
      tenantId,
      clientId: "https://app.example/client.json",
      name: "Example App",
      redirectUris: ["https://app.example/cb"],
      registration: "metadata_document",
      status: "pending",
      decidedBy: null,
      decidedAt: null,
      firstSeenAt: "2026-11-01T10:00:00.000Z",
      lastSeenAt: "2026-11-02T10:00:00.000Z",
    };
    const fill = (qc: QueryClient) => qc.setQueryData(grantKeys.clients(tenantId), { tenantId, requireClientApproval: true, items: [client] });
    const admin = render(as("admin"), fill, createElement(ClientsTable, { tenantId }));
    expect(admin).toContain("Require client approval");
    expect(admin).toContain("https://app.example/cb");
    expect(admin).toContain("Metadata document");
    expect(admin).toMatch(/<input[^>]*type="checkbox"[^>]*checked=""/);
    expect(admin).toContain(">Approve<");
    const auditor = render(as("auditor"), fill, createElement(ClientsTable, { tenantId }));
    expect(auditor).toMatch(/<input[^>]*type="checkbox"[^>]*disabled=""/);
  });

  it("shows the revocation history with the authorization-server outcome", () => {
    const rev: RevocationRow = {
      id: "rvk_1",
      tenantId,
      serverId: null,
      serverName: null,
      userId: "alice",
      clientId: null,
      grantId: null,
      before: "2026-11-03T10:00:00.000Z",
      reason: "left the company",
      upstreamRevocation: { status: "not_configured", detail: "none" },
      createdBy: "admin@test",
      createdAt: "2026-11-03T10:00:00.000Z",
    };
    const html = render(as("auditor"), (qc) => qc.setQueryData(grantKeys.revocations(tenantId), page([rev])), createElement(RevocationsTable, { tenantId }));
    expect(html).toContain("Every grant of user alice");
    expect(html).toContain("left the company");
    expect(html).toContain("not configured");
    expect(html).toContain("all servers");
  });
});
