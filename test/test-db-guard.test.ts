import { afterEach, describe, expect, it } from "vitest";
import { assertLocalDatabaseUrl, createTestDb } from "./db";

const saved = process.env.DATABASE_URL;
afterEach(() => {
  if (saved === undefined) delete process.env.DATABASE_URL;
  else process.env.DATABASE_URL = saved;
});

describe("test database guard", () => {
  it.each(["postgres://root@127.0.0.1:5432/test", "postgresql://u:p@localhost/db", "postgres://root@[::1]:5432/test"])("accepts local %s", (url) => {
    expect(assertLocalDatabaseUrl(url).toString()).toBe(new URL(url).toString());
  });

  it.each(["postgres://root@db.example.com:5432/prod", "postgres://root@10.0.0.5/test", "postgres://root@localhost.example.com/test", "mysql://root@127.0.0.1/test", "not a url"])(
    "refuses %s",
    (url) => {
      expect(() => assertLocalDatabaseUrl(url)).toThrow();
    },
  );

  it("createTestDb refuses a remote DATABASE_URL before connecting", async () => {
    process.env.DATABASE_URL = "postgres://root@db.example.com:5432/prod";
    await expect(createTestDb()).rejects.toThrow(/non-local/);
  });
});
