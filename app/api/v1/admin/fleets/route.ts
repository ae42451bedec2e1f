import { createFleet, createFleetInput, listFleets } from "@/lib/fleets/service";
import { api } from "@/lib/http/api";

// GET /api/v1/admin/fleets - fleets the caller can read
export const GET = api({}, ({ ctx }) => listFleets(ctx));

// POST /api/v1/admin/fleets - create a fleet of agents serving some servers (owners)
export const POST = api({ body: createFleetInput, status: 201 }, ({ ctx, body }) => createFleet(ctx, body));
