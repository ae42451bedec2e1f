// Response shapes of the admin API as the dashboard reads them.
export type { PublicTenant } from "@/lib/tenants/service";
export type { PublicServer } from "@/lib/servers/service";
export type { PublicTool, ImportSummary } from "@/lib/catalog/service";
export type { PublicUser } from "@/lib/auth/users";
export type { Page } from "@/lib/pagination";

export interface Me {
  actor: { type: "user" | "token"; id: string; label: string; globalRole: "owner" | "auditor" | "member" };
  user: { id: string; email: string; name: string; mustChangePassword: boolean } | null;
  tenants: { id: string; name: string; slug: string; status: "active" | "disabled"; role: "owner" | "admin" | "auditor" }[];
}
