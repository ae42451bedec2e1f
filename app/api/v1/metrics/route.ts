import { createHash, timingSafeEqual } from "node:crypto";
import type { NextRequest } from "next/server";
import { authenticate, errorResponse } from "@/lib/http/api";
import { getEnv } from "@/lib/env";
import { AppError } from "@/lib/errors";
import { controlPlaneMetrics } from "@/lib/metrics/registry";

export const dynamic = "force-dynamic";

const digest = (s: string) => createHash("sha256").update(s).digest();

// GET /api/v1/metrics - Prometheus exposition of the control plane: a scraper's MANDATE_METRICS_TOKEN, or an owner's or auditor's session or API token
export async function GET(req: NextRequest): Promise<Response> {
  try {
    const expected = getEnv().MANDATE_METRICS_TOKEN;
    const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.get("authorization") ?? "")?.[1];
    // Compared as digests: constant time whatever the lengths.
    const scraper = Boolean(expected && bearer && timingSafeEqual(digest(bearer), digest(expected)));
    if (!scraper) {
      const actor = await authenticate(req);
      if (actor.globalRole !== "owner" && actor.globalRole !== "auditor") throw new AppError("forbidden", "Metrics are for owners, auditors and the metrics token");
    }
    const { registry } = controlPlaneMetrics();
    return new Response(await registry.metrics(), { headers: { "content-type": registry.contentType, "cache-control": "no-store" } });
  } catch (err) {
    return errorResponse(err, crypto.randomUUID());
  }
}
