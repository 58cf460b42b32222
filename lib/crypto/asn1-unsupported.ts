/**
 * Bundled in place of `asn1.js` (lib/infra/bundling.ts, BUNDLE.alias); never imported by code.
 *
 * The Encryption SDK uses asn1.js only for ECDSA. @aws-crypto/serialize's ecdsa_signature.js
 * DER-encodes message signatures with it, and @aws-crypto/material-management's pem_helpers.js
 * PEM-formats EC keys for Node versions before 11. The broker's algorithm suite signs nothing,
 * and token-cipher.ts refuses a message of any other suite before the SDK reads it, so neither
 * path runs. Both modules still call `define` when they load. This stand-in answers with a model
 * whose every use throws, and keeps asn1.js (67 KB minified, with its own copy of bn.js 4) out of
 * every bundle.
 */

/** Every use of the stand-in ends here, as a call or as a constructor. */
function signingIsNotBundled(): never {
  throw new Error(
    "ECDSA signatures are not in the broker's bundles: asn1.js is replaced by lib/crypto/asn1-unsupported.ts",
  );
}

export default {
  define: () => ({ encode: signingIsNotBundled, decode: signingIsNotBundled }),
  bignum: { BN: signingIsNotBundled },
};
