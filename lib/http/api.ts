import "server-only";
import { randomUUID } from "node:crypto";
import type { NextRequest } from "next/server";
import { getToken } from "next-auth/jwt";
import { ZodError, type z } from "zod";
import { actorForApiToken, actorForSession, TOKEN_PREFIX } from "@/lib/auth/actors";
import type { Actor } from "@/lib/auth/permissions";
import type { Ctx } from "@/lib/context";
import { getDb } from "@/lib/db";
import { getEnv } from "@/lib/env";
import { pgErrorCode } from "@/lib/db-errors";
import { AppError } from "@/lib/errors";
import { timed } from "@/lib/metrics/registry";
import { readJsonBody } from "./body";

export const MAX_BODY_BYTES = 256 * 1024;

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-store", ...headers } });

/** One error shape for the whole API: `{ error: { code, message, issues? } }`. */
export function errorResponse(err: unknown, requestId: string): Response {
  if (err instanceof ZodError) {
    const issues = err.issues.map((i) => ({ path: i.path.join("."), message: i.message }));
    return json(422, { error: { code: "validation_failed", message: "The request is not valid", issues } }, { "x-request-id": requestId });
  }
  if (err instanceof AppError) {
    const headers: Record<string, string> = { "x-request-id": requestId };
    if (err.code === "unauthenticated") headers["www-authenticate"] = 'Bearer realm="mandate-admin"';
    return json(err.status, { error: { code: err.code, message: err.message, ...(err.issues ? { issues: err.issues } : {}) } }, headers);
  }
  // Unknown errors: log the request id, the class, the first line of the
  // message and any PostgreSQL code — never query parameters (they may hold
  // secrets) — and answer without internals.
  const first = err instanceof Error ? err.message.split("\n", 1)[0]!.slice(0, 300) : "error";
  const code = pgErrorCode(err);
  console.error(`[api] ${requestId} unhandled ${err instanceof Error ? err.name : "error"}: ${first}${code ? ` (pg ${code})` : ""}`);
  return json(500, { error: { code: "internal", message: `Something went wrong (request ${requestId})` } }, { "x-request-id": requestId });
}

/**
 * Authenticates an admin API request: a `Bearer mdt_…` API token, or the
 * dashboard's session cookie. Cookie-authenticated writes must come from our
 * own origin (CSRF); token requests carry no ambient credential.
 */
export async function authenticate(req: NextRequest): Promise<Actor> {
  const db = await getDb();
  const auth = req.headers.get("authorization");
  if (auth) {
    const m = /^Bearer\s+(\S+)$/i.exec(auth);
    const actor = m?.[1]?.startsWith(TOKEN_PREFIX) ? await actorForApiToken(db, m[1]) : null;
    if (!actor) throw new AppError("unauthenticated", "The API token is invalid, expired or revoked");
    return actor;
  }
  const env = getEnv();
  const token = await getToken({ req, secret: env.NEXTAUTH_SECRET, secureCookie: env.NEXTAUTH_URL.startsWith("https://") });
  const actor = token?.sub && typeof token.sv === "number" ? await actorForSession(db, token.sub, token.sv) : null;
  if (!actor) throw new AppError("unauthenticated", "Sign in or send an API token");
  if (!["GET", "HEAD", "OPTIONS"].includes(req.method)) checkSameOrigin(req, env.NEXTAUTH_URL);
  return actor;
}

function checkSameOrigin(req: NextRequest, publicUrl: string) {
  const origin = req.headers.get("origin");
  const allowed = new Set([new URL(publicUrl).origin, req.nextUrl.origin]);
  if (origin ? !allowed.has(origin) : req.headers.get("sec-fetch-site") !== "same-origin") {
    throw new AppError("csrf_rejected", "Cross-site request refused");
  }
}

type Params = Record<string, string>;

// All a user still holding a one-time password may do (issue 17.7): see who it is, and change the password.
const PASSWORD_CHANGE_ROUTES = new Set(["GET /api/v1/admin/me", "POST /api/v1/admin/me/password"]);

interface Spec<B extends z.ZodType | undefined, Q extends z.ZodType | undefined> {
  body?: B;
  query?: Q;
  /** Status for a successful answer with a body (default 200). */
  status?: number;
}

type Infer<T> = T extends z.ZodType ? z.infer<T> : undefined;

/**
 * Wraps an admin API handler: authentication, CSRF, body limits, zod parsing
 * and error mapping. The handler does only the domain call; tenant checks
 * happen in lib/ against the loaded rows.
 */
export function api<B extends z.ZodType | undefined = undefined, Q extends z.ZodType | undefined = undefined>(
  spec: Spec<B, Q>,
  fn: (a: { ctx: Ctx; params: Params; body: Infer<B>; query: Infer<Q>; req: NextRequest }) => Promise<unknown>,
) {
  // Timed per route pattern for GET /api/v1/metrics.
  return timed(async (req: NextRequest, routeCtx: { params: Promise<Params> }): Promise<Response> => {
    const requestId = req.headers.get("x-request-id")?.slice(0, 64) || randomUUID();
    try {
      const actor = await authenticate(req);
      if (actor.mustChangePassword && !PASSWORD_CHANGE_ROUTES.has(`${req.method} ${req.nextUrl.pathname}`)) {
        throw new AppError("forbidden", "Choose your own password first: POST /api/v1/admin/me/password");
      }
      const params = (await routeCtx.params) ?? {};
      const body = (spec.body ? spec.body.parse(await readJsonBody(req, MAX_BODY_BYTES)) : undefined) as Infer<B>;
      const query = (spec.query ? spec.query.parse(Object.fromEntries(req.nextUrl.searchParams)) : undefined) as Infer<Q>;
      const out = await fn({ ctx: { db: await getDb(), actor }, params, body, query, req });
      if (out instanceof Response) return out;
      if (out === undefined) return new Response(null, { status: 204, headers: { "x-request-id": requestId } });
      return json(spec.status ?? 200, out, { "x-request-id": requestId });
    } catch (err) {
      return errorResponse(err, requestId);
    }
  });
}
