/**
 * Bundled in place of `bn.js` (lib/infra/bundling.ts, BUNDLE.alias); never imported by code.
 *
 * The Encryption SDK imports bn.js 5 (45 KB minified) for a handful of integer operations:
 * @aws-crypto/serialize writes and reads a frame's 64-bit content length (aad_factory.js,
 * decode_body_header.js) on every seal and open, and @aws-crypto/material-management decompresses
 * and compresses ECDSA public keys (ecc_decode.js, which builds its curve constants when it loads,
 * and ecc_encode.js). Node's BigInt does all of it; this class is bn.js's API for those calls only,
 * and test/crypto/bn-bigint.test.ts checks each against bn.js itself. Any other bn.js method is
 * absent, so a new use in the SDK fails loudly in the token-cipher tests instead of computing wrong.
 */

type Endian = "be" | "le";

/** Bytes (most significant first) → BigInt. */
function fromBytes(bytes: readonly number[], endian: Endian): bigint {
  const ordered = endian === "le" ? [...bytes].reverse() : bytes;
  let value = 0n;
  for (const byte of ordered) value = (value << 8n) | BigInt(byte & 0xff);
  return value;
}

function parse(
  input: BN | bigint | number | string | readonly number[],
  base: number | string,
  endian: Endian,
) {
  if (input instanceof BN) return input.value;
  if (typeof input === "bigint") return input;
  if (typeof input === "number") {
    if (!Number.isSafeInteger(input)) throw new Error(`bn.js stand-in: ${input} is not a safe integer`);
    return BigInt(input);
  }
  if (typeof input === "string") {
    const radix = base === "hex" ? 16 : Number(base);
    const negative = input.startsWith("-");
    const digits = negative ? input.slice(1) : input;
    if (radix !== 16 && radix !== 10) throw new Error(`bn.js stand-in: base ${base} is not supported`);
    const value = BigInt(radix === 16 ? `0x${digits || "0"}` : digits || "0");
    return negative ? -value : value;
  }
  // An array (or typed array) of bytes: the base argument is ignored, as bn.js ignores it.
  return fromBytes(Array.from(input), endian);
}

/** Non-negative remainder, as bn.js's `umod` (and `mod` for the non-negative values used here). */
function modulo(a: bigint, m: bigint): bigint {
  const r = a % m;
  return r < 0n ? r + m : r;
}

/** A reduction context: Montgomery form in bn.js; plain modular arithmetic gives the same results. */
class Red {
  constructor(readonly m: bigint) {}
}

export default class BN {
  readonly value: bigint;
  /** Set by `toRed`: the modulus `redPow` works in. */
  readonly red: Red | undefined;

  constructor(
    input: BN | bigint | number | string | readonly number[] = 0,
    base: number | string = 10,
    endian: Endian = "be",
    red?: Red,
  ) {
    // bn.js allows `new BN(bytes, 'le')`: the endian in the base's place.
    const order = base === "le" || base === "be" ? base : endian;
    this.value = parse(input, base === "le" || base === "be" ? 10 : base, order);
    this.red = red;
  }

  static isBN(value: unknown): value is BN {
    return value instanceof BN;
  }

  static mont(modulus: BN): Red {
    return new Red(modulus.value);
  }

  static red(modulus: BN): Red {
    return new Red(modulus.value);
  }

  add(other: BN): BN {
    return new BN(this.value + other.value);
  }

  sub(other: BN): BN {
    return new BN(this.value - other.value);
  }

  mul(other: BN): BN {
    return new BN(this.value * other.value);
  }

  /** Truncating division, as bn.js's `div`. */
  div(other: BN): BN {
    return new BN(this.value / other.value);
  }

  pow(exponent: BN): BN {
    return new BN(this.value ** exponent.value);
  }

  mod(other: BN): BN {
    return new BN(this.value % other.value);
  }

  umod(other: BN): BN {
    return new BN(modulo(this.value, other.value));
  }

  eq(other: BN): boolean {
    return this.value === other.value;
  }

  cmp(other: BN): -1 | 0 | 1 {
    return this.value < other.value ? -1 : this.value > other.value ? 1 : 0;
  }

  isZero(): boolean {
    return this.value === 0n;
  }

  bitLength(): number {
    const abs = this.value < 0n ? -this.value : this.value;
    return abs === 0n ? 0 : abs.toString(2).length;
  }

  byteLength(): number {
    return Math.ceil(this.bitLength() / 8);
  }

  /** bn.js throws above 53 bits; so does this. */
  toNumber(): number {
    if (this.bitLength() > 53) throw new Error("Number can only safely store up to 53 bits");
    return Number(this.value);
  }

  toString(base: number | "hex" = 10): string {
    return this.value.toString(base === "hex" ? 16 : base);
  }

  /** The absolute value's bytes, zero-padded to `length`; bn.js throws when they do not fit. */
  toArray(endian: Endian = "be", length?: number): number[] {
    let rest = this.value < 0n ? -this.value : this.value;
    const bytes: number[] = [];
    while (rest > 0n) {
      bytes.unshift(Number(rest & 0xffn));
      rest >>= 8n;
    }
    const size = length ?? Math.max(1, bytes.length);
    if (bytes.length > size) throw new Error("byte array longer than desired length");
    const padded = [...new Array<number>(size - bytes.length).fill(0), ...bytes];
    return endian === "le" ? padded.reverse() : padded;
  }

  toBuffer(endian: Endian = "be", length?: number): Buffer {
    return Buffer.from(this.toArray(endian, length));
  }

  toRed(red: Red): BN {
    return new BN(modulo(this.value, red.m), 10, "be", red);
  }

  fromRed(): BN {
    return new BN(this.value);
  }

  /** Modular exponentiation by squaring, in the context `toRed` set. */
  redPow(exponent: BN): BN {
    const red = this.red;
    if (!red) throw new Error("redPow needs a number in a reduction context (toRed)");
    let result = 1n;
    let base = modulo(this.value, red.m);
    for (let e = exponent.value; e > 0n; e >>= 1n) {
      if (e & 1n) result = (result * base) % red.m;
      base = (base * base) % red.m;
    }
    return new BN(result, 10, "be", red);
  }
}
