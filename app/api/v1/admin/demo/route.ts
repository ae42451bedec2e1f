import { signalDemoRemoved } from "@/lib/demo/local";
import { demoStatus, removeDemo } from "@/lib/demo/service";
import { api } from "@/lib/http/api";

// GET /api/v1/admin/demo - whether the live demo (sample data) is on, and its protected MCP URL
export const GET = api({}, async ({ ctx }) => demoStatus(ctx.db, ctx.actor));

// DELETE /api/v1/admin/demo - remove the demo tenant and all that hangs off it, and stop the demo's processes (owners)
export const DELETE = api({}, async ({ ctx }) => {
  const out = await removeDemo(ctx);
  signalDemoRemoved();
  return out;
});
