import "server-only";
import { getServerSession } from "next-auth";
import { getDb } from "@/lib/db";
import { actorForSession } from "./actors";
import { getAuthOptions } from "./options";
import type { Actor } from "./permissions";

/** The signed-in actor of a server component, or null. */
export async function currentActor(): Promise<Actor | null> {
  const session = (await getServerSession(getAuthOptions())) as { user?: { id?: string }; sv?: number } | null;
  if (!session?.user?.id || typeof session.sv !== "number") return null;
  return actorForSession(await getDb(), session.user.id, session.sv);
}
