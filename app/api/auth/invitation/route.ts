import { randomUUID } from "node:crypto";
import type { NextRequest } from "next/server";
import { acceptInvitation, acceptInvitationInput } from "@/lib/auth/invitations";
import { getDb } from "@/lib/db";
import { errorResponse } from "@/lib/http/api";
import { readJsonBody } from "@/lib/http/body";

// The token and a password: nothing larger is an invitation answer.
const MAX_BODY_BYTES = 4 * 1024;

// POST /api/auth/invitation - complete an invitation: the invitee chooses their password (no session; the link's token is the credential)
export async function POST(req: NextRequest): Promise<Response> {
  const requestId = randomUUID();
  try {
    const body = acceptInvitationInput.parse(await readJsonBody(req, MAX_BODY_BYTES));
    const out = await acceptInvitation(await getDb(), body);
    return Response.json(out, { headers: { "cache-control": "no-store", "x-request-id": requestId } });
  } catch (err) {
    return errorResponse(err, requestId);
  }
}
