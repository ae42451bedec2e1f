import type { NextRequest } from "next/server";
import { callbackQuery, completeConnect } from "@/lib/connections/service";
import { getEnv } from "@/lib/env";
import { api } from "@/lib/http/api";
import { AppError } from "@/lib/errors";

// GET /api/v1/admin/connections/callback - the upstream AS redirects here: the state is checked for the signed-in user, the code exchanged, the connection stored; redirects to /connections
const handle = api({ query: callbackQuery }, async ({ ctx, req }) => {
  const env = getEnv();
  const to = new URL("/connections", env.NEXTAUTH_URL);
  try {
    const done = await completeConnect(ctx, req.nextUrl.searchParams, { kek: env.kek, keyring: env.keyring, origin: env.NEXTAUTH_URL });
    to.searchParams.set("connected", done.serverId);
  } catch (err) {
    if (!(err instanceof AppError)) throw err;
    // The message names what failed (never a code, token or the AS's body).
    to.searchParams.set("error", err.message.slice(0, 300));
  }
  return new Response(null, { status: 303, headers: { location: to.toString(), "cache-control": "no-store" } });
});

// A session that ended while the user was at the upstream's AS: sign in again and come back here (the state stays valid for its 10 minutes).
export const GET = async (req: NextRequest, routeCtx: { params: Promise<Record<string, string>> }) => {
  const res = await handle(req, routeCtx);
  if (res.status !== 401) return res;
  const login = new URL("/login", getEnv().NEXTAUTH_URL);
  login.searchParams.set("callbackUrl", `${req.nextUrl.pathname}${req.nextUrl.search}`);
  return new Response(null, { status: 303, headers: { location: login.toString(), "cache-control": "no-store" } });
};
