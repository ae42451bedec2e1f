import { invitationSettingsFrom } from "@/lib/auth/invitations";
import { createUser, createUserInput, listUsers } from "@/lib/auth/users";
import { getEnv } from "@/lib/env";
import { api } from "@/lib/http/api";
import { pageQuery } from "@/lib/pagination";

// GET /api/v1/admin/users - list users (owners and global auditors)
export const GET = api({ query: pageQuery }, ({ ctx, query }) => listUsers(ctx, query));

// POST /api/v1/admin/users - create a user (owners) with no credential; its invitation link is returned once
export const POST = api({ body: createUserInput, status: 201 }, ({ ctx, body }) => createUser(ctx, body, invitationSettingsFrom(getEnv())));
