import { z } from "zod";
import { api } from "@/lib/http/api";
import { runServerTests } from "@/lib/policy/service";

const body = z.object({ serverId: z.string(), tenantId: z.string().optional() });

// POST /api/v1/admin/policy-tests/run - compile the server's current policies and run its tests
export const POST = api({ body }, ({ ctx, body }) => runServerTests(ctx, body.serverId, body.tenantId));
