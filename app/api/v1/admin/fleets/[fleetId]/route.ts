import { deleteFleet, getFleet, updateFleet, updateFleetInput } from "@/lib/fleets/service";
import { api } from "@/lib/http/api";

// GET /api/v1/admin/fleets/{fleetId} - one fleet with its servers, agents and active revision
export const GET = api({}, ({ ctx, params }) => getFleet(ctx, params.fleetId!));

// PATCH /api/v1/admin/fleets/{fleetId} - rename, describe, replace its servers (owners)
export const PATCH = api({ body: updateFleetInput }, ({ ctx, params, body }) => updateFleet(ctx, params.fleetId!, body));

// DELETE /api/v1/admin/fleets/{fleetId} - delete a fleet with its agents, tokens and bundles (owners)
export const DELETE = api({}, ({ ctx, params }) => deleteFleet(ctx, params.fleetId!));
