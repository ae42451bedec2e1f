import { expect } from "vitest";
import { AppError, type ErrorCode } from "@/lib/errors";

/** Awaits `p`, asserts it rejects with an AppError of `code`, and returns the error. */
export async function expectAppError(p: Promise<unknown>, code: ErrorCode): Promise<AppError> {
  let caught: unknown = undefined;
  let resolved = false;
  try {
    await p;
    resolved = true;
  } catch (err) {
    caught = err;
  }
  expect(resolved, `expected an AppError "${code}", but the call succeeded`).toBe(false);
  expect(caught).toBeInstanceOf(AppError);
  expect((caught as AppError).code, (caught as Error).message).toBe(code);
  return caught as AppError;
}
