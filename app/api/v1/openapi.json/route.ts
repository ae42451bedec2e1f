import { getEnv } from "@/lib/env";
import { openApiDocument } from "@/lib/http/openapi";

// GET /api/v1/openapi.json - the admin API's OpenAPI document (public)
export function GET() {
  return Response.json(openApiDocument(getEnv().NEXTAUTH_URL));
}
