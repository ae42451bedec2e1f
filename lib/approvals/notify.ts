import "server-only";
import { eq } from "drizzle-orm";
import type { z } from "zod";
import type { Db } from "@/db/client";
import { approvalSettings, servers, type ApprovalRequest } from "@/db/schema";
import { keyringOf, type Kek } from "@/lib/bundles/signing";
import type { Ctx } from "@/lib/context";
import { AppError } from "@/lib/errors";
import { checkUrl, EgressError, egressFetch } from "@/lib/net/egress";
import { egressPolicy } from "@/lib/net/policy";
import { loadTenant } from "@/lib/tenants/service";
import { recordEvent } from "@/lib/trail/record";
import { openSecret, sealSecret } from "@/lib/vault/crypto";
import type { approvalSettingsInput } from "./service";

/** What the vault's envelope binds a tenant's webhook to (a row id and version, as for a secret). */
const webhookAad = (tenantId: string) => `approvals-webhook:${tenantId}`;
/** Scheme and host: enough to recognise a webhook, never its path or query (which carry its secret). */
const hintOf = (url: string) => {
  const u = new URL(url);
  return `${u.protocol}//${u.host}`;
};

/** The Slack-compatible message of a new request: `text` for any incoming webhook, `blocks` for Slack. Never the arguments (they may be sensitive even masked). */
export function requestMessage(r: Pick<ApprovalRequest, "id" | "tool" | "userId" | "clientId" | "approvers" | "expiresAt">, serverName: string, url: string) {
  const text = `Approval needed: ${r.tool} on ${serverName}, called by ${r.userId} through ${r.clientId}. Approvers: ${r.approvers.join(", ")}. Expires ${r.expiresAt.toISOString()}. ${url}`;
  return {
    text,
    blocks: [
      {
        type: "section",
        text: {
          type: "mrkdwn",
          text: `*Approval needed*: \`${r.tool}\` on ${serverName}\nCaller: ${r.userId} (client ${r.clientId})\nApprovers: ${r.approvers.join(", ")}\nExpires: ${r.expiresAt.toISOString()}`,
        },
      },
      { type: "actions", elements: [{ type: "button", text: { type: "plain_text", text: "Review" }, url }] },
    ],
  };
}

/**
 * Tells the tenant's webhook of a new request, best effort: through the
 * egress guard (address policy, no redirects, 5 s), never throwing, never
 * logging the URL. A failure is noted in the trail by host only.
 */
export async function notifyRequested(db: Db, kek: Kek, r: ApprovalRequest, url: string): Promise<void> {
  try {
    const [s] = await db.select().from(approvalSettings).where(eq(approvalSettings.tenantId, r.tenantId));
    if (!s?.webhook) return;
    const opened = openSecret(keyringOf(kek), webhookAad(r.tenantId), 1, s.webhook);
    if (typeof opened !== "string") return;
    const [srv] = await db.select({ name: servers.name }).from(servers).where(eq(servers.id, r.serverId));
    let outcome = "sent";
    try {
      const res = await egressFetch(
        opened,
        { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(requestMessage(r, srv?.name ?? r.serverId, url)) },
        { policy: egressPolicy(), timeoutMs: 5000, maxBytes: 64 * 1024 },
      );
      await res.body?.cancel().catch(() => undefined);
      if (!res.ok) outcome = `HTTP ${res.status}`;
    } catch (err) {
      outcome = err instanceof EgressError ? err.code : "failed";
    }
    await recordEvent(db, "system", { action: "approval.notify", targetType: "approval", targetId: r.id, tenantId: r.tenantId, after: { webhook: s.webhookHint, outcome } });
  } catch {
    // Notification is best effort: the request stands, and the queue shows it.
  }
}

/** A tenant's approval settings (the webhook only by its host). */
export async function getApprovalSettings(ctx: Ctx, tenantId: string) {
  const t = await loadTenant(ctx, tenantId, "tenants.read");
  const [s] = await ctx.db.select().from(approvalSettings).where(eq(approvalSettings.tenantId, t.id));
  return { tenantId: t.id, requestTtlMinutes: s?.requestTtlMinutes ?? 15, webhook: s?.webhookHint ?? null };
}

/** Saves a tenant's approval settings; a webhook URL is sealed with the key-encryption key and never returned or logged. */
export async function saveApprovalSettings(ctx: Ctx, tenantId: string, input: z.infer<typeof approvalSettingsInput>, kek: Kek) {
  const t = await loadTenant(ctx, tenantId, "tenants.write");
  const patch: Partial<typeof approvalSettings.$inferInsert> = {};
  if (input.requestTtlMinutes !== undefined) patch.requestTtlMinutes = input.requestTtlMinutes;
  if (input.webhookUrl !== undefined) {
    if (input.webhookUrl) {
      try {
        checkUrl(input.webhookUrl, egressPolicy(), true);
      } catch (err) {
        throw new AppError("validation_failed", "The webhook URL is not usable", [{ path: "webhookUrl", message: err instanceof EgressError ? err.message : "not a valid URL" }]);
      }
      const s = sealSecret(kek, webhookAad(t.id), 1, input.webhookUrl);
      patch.webhook = { ciphertext: s.ciphertext, wrappedKey: s.wrappedKey, kekId: s.kekId };
      patch.webhookHint = hintOf(input.webhookUrl);
    } else {
      patch.webhook = null;
      patch.webhookHint = null;
    }
  }
  await ctx.db.transaction(async (tx) => {
    await tx
      .insert(approvalSettings)
      .values({ tenantId: t.id, ...patch })
      .onConflictDoUpdate({ target: approvalSettings.tenantId, set: { ...patch, updatedAt: new Date() } });
    await recordEvent(tx, ctx.actor, {
      action: "approval.settings",
      targetType: "tenant",
      targetId: t.id,
      tenantId: t.id,
      after: { requestTtlMinutes: input.requestTtlMinutes, webhook: input.webhookUrl === undefined ? undefined : (patch.webhookHint ?? null) },
    });
  });
  return getApprovalSettings(ctx, t.id);
}
