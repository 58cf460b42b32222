import { randomUUID } from "node:crypto";
import { TokenDecryptError } from "../errors.js";
import type { ChainAttributes, ChainRecord } from "./chain-record.js";
import type { EngineDeps } from "./engine-deps.js";

/**
 * An item written before incarnations existed has none, and its tokens carry the old encryption
 * context (without one). Before its first lease it gets an incarnation, with its tokens re-sealed
 * for it, in one conditional write: no login, no `decrypt_failed`. A ciphertext that does not
 * decrypt is left as it is; the refresh that needs it reports it, as before.
 *
 * @returns the item as it is now (upgraded by us or by another invocation, or still legacy if a
 *   legacy holder's lease is live: the caller waits for it like for any lease), or undefined if
 *   the connection is gone
 */
export async function withIncarnation(
  deps: Pick<EngineDeps, "store" | "cipher" | "log">,
  record: ChainRecord,
): Promise<ChainRecord | undefined> {
  if (record.incarnation !== undefined) return record;
  const { store, cipher, log } = deps;
  const incarnation = randomUUID();
  const resealed: { accessCt?: string; refreshCt?: string } = {};
  for (const kind of ["access", "refresh"] as const) {
    const ciphertext = kind === "access" ? record.accessCt : record.refreshCt;
    if (ciphertext === undefined) continue;
    let plaintext: string;
    try {
      plaintext = await cipher.decrypt(ciphertext, { connectionId: record.connectionId, kind });
    } catch (error) {
      if (error instanceof TokenDecryptError) continue;
      throw error;
    }
    resealed[kind === "access" ? "accessCt" : "refreshCt"] = await cipher.encrypt(plaintext, {
      connectionId: record.connectionId,
      kind,
      incarnation,
    });
  }
  const changes: Partial<ChainAttributes> = resealed;
  if (await store.unleased.adoptIncarnation(record, incarnation, changes)) {
    log.info("connection adopted an incarnation", { connectionId: record.connectionId });
  }
  return store.get(record.connectionId);
}

/**
 * True when a fresh encrypt-and-decrypt works: the Encryption SDK reports a KMS outage like a bad
 * ciphertext, so only then is a ciphertext that does not decrypt itself the problem.
 */
export async function cipherWorks(
  cipher: EngineDeps["cipher"],
  chain: { readonly connectionId: string; readonly incarnation: string },
): Promise<boolean> {
  const binding = {
    connectionId: chain.connectionId,
    incarnation: chain.incarnation,
    kind: "access",
  } as const;
  try {
    return (await cipher.decrypt(await cipher.encrypt("probe", binding), binding)) === "probe";
  } catch {
    return false;
  }
}
