import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";
import BN from "../../lib/crypto/bn-bigint.js";

// The real bn.js (no types installed: a loose constructor is enough to compare answers).
type RealBN = {
  toArray(endian: string, length?: number): number[];
  toNumber(): number;
  toString(base: number): string;
  bitLength(): number;
  eq(other: RealBN): boolean;
  mod(other: RealBN): RealBN;
  add(other: RealBN): RealBN;
  sub(other: RealBN): RealBN;
  mul(other: RealBN): RealBN;
  div(other: RealBN): RealBN;
  pow(other: RealBN): RealBN;
  toRed(red: unknown): { redPow(e: RealBN): { fromRed(): RealBN } };
};
const RealBN = createRequire(import.meta.url)("bn.js") as {
  new (input: unknown, base?: unknown, endian?: string): RealBN;
  mont(p: RealBN): unknown;
};

const P256 = "FFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF";
const P256_A = "FFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFC";
const P256_B = "5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B";
const P384 =
  "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFFFF0000000000000000FFFFFFFF";

describe("bn-bigint (the bundles' stand-in for bn.js)", () => {
  describe("the Encryption SDK's frame lengths (@aws-crypto/serialize)", () => {
    it.each([0, 1, 255, 256, 4096, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER])(
      "writes %d as the 8 big-endian bytes bn.js writes (aad_factory)",
      (contentLength) => {
        expect(new BN(contentLength).toArray("be", 8)).toEqual(new RealBN(contentLength).toArray("be", 8));
      },
    );

    it.each([
      [[0, 0, 0, 0, 0, 0, 0, 0]],
      [[0, 0, 0, 0, 0, 0, 16, 0]],
      [[0, 0, 0, 1, 0, 0, 0, 0]],
      [[0, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]],
    ])("reads %j as bn.js reads it (decode_body_header)", (bytes) => {
      expect(new BN(bytes, 16, "be").toNumber()).toBe(new RealBN(bytes, 16, "be").toNumber());
    });

    it("refuses, as bn.js does, a length above 53 bits", () => {
      const bytes = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
      expect(() => new RealBN(bytes, 16, "be").toNumber()).toThrow();
      expect(() => new BN(bytes, 16, "be").toNumber()).toThrow();
    });

    it("refuses, as bn.js does, a number that does not fit the length asked for", () => {
      expect(() => new RealBN(2 ** 40).toArray("be", 4)).toThrow();
      expect(() => new BN(2 ** 40).toArray("be", 4)).toThrow();
    });
  });

  describe("EC point (de)compression (@aws-crypto/material-management)", () => {
    it.each([
      ["P-256", P256],
      ["P-384", P384],
    ])("computes %s's curve constants as bn.js does", (_curve, hex) => {
      const p = new BN(hex, 16);
      const real = new RealBN(hex, 16);
      const four = new BN(4);
      expect(p.mod(four).eq(new BN(3))).toBe(real.mod(new RealBN(4)).eq(new RealBN(3)));
      expect(p.add(new BN(1)).div(four).toString(16)).toBe(
        real.add(new RealBN(1)).div(new RealBN(4)).toString(16),
      );
      expect(p.bitLength()).toBe(real.bitLength());
    });

    it("decompresses a point's y as ecc_decode does with bn.js", () => {
      const x = Array.from({ length: 32 }, (_, i) => (i * 37 + 11) & 0xff);
      const compute = <T extends RealBN | BN>(
        make: (input: unknown, base?: number) => T,
        mont: (p: T) => unknown,
      ) => {
        const p = make(P256, 16);
        const a = make(P256_A, 16);
        const b = make(P256_B, 16);
        const three = make(3);
        const xn = make(x);
        // biome-ignore lint/suspicious/noExplicitAny: the same calls on both implementations
        const ops = (v: T) => v as any;
        const x3 = ops(xn).pow(three).mod(p);
        const ax = ops(a).mul(xn).mod(p);
        const alpha = ops(x3).add(ax).add(b).mod(p);
        const redPow = ops(p).add(make(1)).div(make(4));
        const beta = ops(alpha).toRed(mont(p)).redPow(redPow).fromRed();
        return { y: beta.toArray("be", 32) as number[], parity: beta.mod(make(2)).toNumber() as number };
      };
      const ours = compute(
        (input, base) => new BN(input as number, base),
        (p) => BN.mont(p),
      );
      const theirs = compute(
        (input, base) => new RealBN(input, base),
        (p) => RealBN.mont(p),
      );
      expect(ours).toEqual(theirs);
      expect(new BN(x).sub(new BN(1)).toArray("be", 32)).toEqual(
        new RealBN(x).sub(new RealBN(1)).toArray("be", 32),
      );
    });
  });
});
