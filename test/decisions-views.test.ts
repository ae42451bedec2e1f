import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deleteView, listViews, savedViewInput, saveView } from "@/lib/decisions/views";
import { createTestDb, makeTenant, makeUser, type MadeUser, type TestDb } from "./db";
import { expectAppError } from "./expect";

let t: TestDb;
let alice: MadeUser;
let bob: MadeUser;

beforeAll(async () => {
  t = await createTestDb();
  const owner = await makeUser(t.db, { role: "owner" });
  const tenant = (await makeTenant(t.db, owner.actor)).id;
  alice = await makeUser(t.db, { memberships: [[tenant, "admin"]] });
  bob = await makeUser(t.db, { memberships: [[tenant, "auditor"]] });
});
afterAll(() => t.close());

describe("saved views of the decision log", () => {
  it("are per user, replaced by name, and deleted by their owner only", async () => {
    const v = await saveView(alice.ctx, savedViewInput.parse({ name: "denials", query: "outcome=deny" }));
    await saveView(alice.ctx, savedViewInput.parse({ name: "denials", query: "outcome=deny&tool=delete_file" }));
    expect((await listViews(alice.ctx)).items).toMatchObject([{ id: v.id, name: "denials", query: "outcome=deny&tool=delete_file" }]);
    expect((await listViews(bob.ctx)).items).toEqual([]);
    await expectAppError(deleteView(bob.ctx, v.id), "not_found");
    await deleteView(alice.ctx, v.id);
    expect((await listViews(alice.ctx)).items).toEqual([]);
  });

  it("accept only a query string", () => {
    expect(savedViewInput.safeParse({ name: "x", query: "a=1&b=%20" }).success).toBe(true);
    expect(savedViewInput.safeParse({ name: "x", query: "javascript:alert(1)<" }).success).toBe(false);
    expect(savedViewInput.safeParse({ name: " ", query: "" }).success).toBe(false);
  });
});
