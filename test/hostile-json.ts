import fc from "fast-check";

/**
 * Any JSON-like value whose strings (keys included) come from `strings`: nested arrays and objects of
 * at most `width` members, numbers, booleans and null. The record tests pass strings with NUL and
 * unpaired surrogates, which the decision log must refuse or normalize.
 */
export const hostileJson = (strings: fc.Arbitrary<string>, width: number): fc.Arbitrary<unknown> =>
  fc.letrec((tie) => ({
    value: fc.oneof(
      { depthSize: "small" },
      strings,
      fc.double(),
      fc.integer(),
      fc.boolean(),
      fc.constant(null),
      fc.array(tie("value"), { maxLength: width }),
      fc.dictionary(strings, tie("value"), { maxKeys: width }),
    ),
  })).value;
