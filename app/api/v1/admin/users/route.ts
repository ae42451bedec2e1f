import { createUser, createUserInput, listUsers } from "@/lib/auth/users";
import { api } from "@/lib/http/api";
import { pageQuery } from "@/lib/pagination";

// GET /api/v1/admin/users - list users (owners and global auditors)
export const GET = api({ query: pageQuery }, ({ ctx, query }) => listUsers(ctx, query));

// POST /api/v1/admin/users - create a user (owners); a generated password is returned once
export const POST = api({ body: createUserInput, status: 201 }, ({ ctx, body }) => createUser(ctx, body));
