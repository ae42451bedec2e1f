import { describe, expect, it } from "vitest";
import { presetAround } from "@/components/audit/charts";
import { niceCeil, timeTicks } from "@/components/audit/outcome-chart";
import { nameOfLiteral } from "@/components/policies/cedar-code";

// The decision-log chart's axes and zoom reset, and the names shown over ids in read-only Cedar.

const H = 3600_000;

describe("decision chart axes", () => {
  it("tops the counts axis with 1, 2 or 5 × 10^n", () => {
    expect([0, 1, 3, 4, 7, 10, 11, 180, 2001].map(niceCeil)).toEqual([1, 1, 5, 5, 10, 10, 20, 200, 5000]);
  });

  it("ticks a day by whole hours and a month by days, never more than asked", () => {
    const to = new Date(2026, 11, 6, 14, 37).getTime();
    const day = timeTicks(to - 24 * H, to, 8);
    expect(day.length).toBeGreaterThanOrEqual(4);
    expect(day.length).toBeLessThanOrEqual(8);
    for (const k of day) expect(new Date(k.t).getMinutes()).toBe(0);
    expect(day.some((k) => k.major)).toBe(true); // local midnight is within the day
    const month = timeTicks(to - 30 * 24 * H, to, 8);
    expect(month.length).toBeLessThanOrEqual(8);
    for (const k of month) expect([new Date(k.t).getHours(), new Date(k.t).getMinutes()]).toEqual([0, 0]);
    for (const k of month) expect(k.label).not.toMatch(/:/);
    const hour = timeTicks(to - H, to, 8);
    for (const k of hour) expect(k.label).toMatch(/\d:\d\d/);
    expect(hour.every((k, i) => i === 0 || k.t - hour[i - 1]!.t === hour[1]!.t - hour[0]!.t)).toBe(true);
  });

  it("resets a zoom to the smallest preset that holds it", () => {
    const now = Date.now();
    expect(presetAround(now - 30 * 60_000, now)).toBe("1h");
    expect(presetAround(now - 5 * H, now)).toBe("24h");
    expect(presetAround(now - 3 * 24 * H, now)).toBe("7d");
    expect(presetAround(now - 60 * 24 * H, now)).toBe("30d");
  });
});

describe("names over ids in read-only Cedar", () => {
  const names = { srv_1: "server Ticket desk", ten_1: "tenant Acme" };
  it("names a server's tool and a bare id, and nothing else", () => {
    expect(nameOfLiteral('"srv_1/create_ticket"', names)).toBe("server Ticket desk / create_ticket");
    expect(nameOfLiteral('"ten_1"', names)).toBe("tenant Acme");
    expect(nameOfLiteral('"payroll"', names)).toBeUndefined();
    expect(nameOfLiteral('"srv_2/x"', names)).toBeUndefined();
    expect(nameOfLiteral('"srv_1"', undefined)).toBeUndefined();
  });
});
