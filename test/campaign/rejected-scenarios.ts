import type { CaseRun, Door } from "./case-run.js";
import { seed, toWindow } from "./scenarios.js";

/**
 * The vend door with `rejectedGeneration`: a consumer reports that Exact refused the access token
 * of the generation it holds (a 401). The token is checked with `/current/Me` once per generation
 * (rejected-token-check.ts), served again if Exact accepts it, else replaced by the generation's
 * one refresh inside Exact's window.
 */

/** The simulator revokes every access token this long after issuing it (door b; lib/sim/variants.ts). */
export const REVOKED_AFTER_SECONDS = 60;

/** The generation each case's consumer holds and reports refused: the chain's after the setup. */
const reportedGenerations = new WeakMap<CaseRun, number>();

export function reportedGeneration(run: CaseRun): number {
  const generation = reportedGenerations.get(run);
  if (generation === undefined) throw new Error(`${run.door.name}: the setup reported no generation`);
  return generation;
}

/** The consumer holds the chain's current generation (the one it will report refused). */
export async function consumerHoldsCurrent(run: CaseRun): Promise<void> {
  reportedGenerations.set(run, (await run.item()).generation);
}

/** Another consumer (another container) reporting the same generation refused. */
export const reportingConsumer = (minValiditySeconds: number) => (run: CaseRun) =>
  run.invoke("competitor", (invocation) =>
    run.vendReporting(invocation, minValiditySeconds, reportedGeneration(run)),
  );

/**
 * After the door's invocation, whatever became of it, the consumer reports the same generation
 * again, as the client library does after a 401 (invalidate's rejectedGeneration): at once after a
 * token or no answer at all; after `retryAfterSeconds` when it was told to come back later.
 */
export const reportAgain = (minValiditySeconds: number) => async (run: CaseRun) => {
  const door = run.log.reportedVends.find((vend) => /\/door-\d+$/.test(vend.tap.owner));
  const answer = door?.answer;
  if (answer?.kind === "error" && answer.retryAfterSeconds !== undefined) {
    run.world.clock.advanceMs(answer.retryAfterSeconds * 1000);
  }
  await run.invoke("retry", (invocation) =>
    run.vendReporting(invocation, minValiditySeconds, reportedGeneration(run)),
  );
};

/**
 * 1e. A vend reporting the current generation refused while Exact still accepts its token (the
 * consumer's 401 had another cause): one `/current/Me` check, recorded by the write that ends its
 * lease, and the same token served again, with no refresh.
 */
export const vendRejectedAccepted: Door = {
  name: "vend (rejected token, accepted)",
  mode: "code",
  async setup(run) {
    await seed(run);
    await consumerHoldsCurrent(run);
  },
  act: (run, invocation) => run.vendReporting(invocation, 30, reportedGeneration(run)),
  compete: reportingConsumer(30),
  followUp: reportAgain(30),
};

/**
 * 1f. A vend reporting the current generation refused after Exact revoked its token
 * (`accessTokenRevokedAfterSeconds`), as Exact's refresh window opens with 29 s left, enough for
 * the 20 s asked, so only the report makes the broker act: `/current/Me` refuses it (recorded),
 * the generation's one refresh follows and the new token is served.
 */
export const vendRejectedRevoked: Door = {
  name: "vend (rejected token, revoked)",
  mode: "code",
  async setup(run) {
    run.world.sim.setVariants({ accessTokenRevokedAfterSeconds: REVOKED_AFTER_SECONDS });
    await seed(run);
    await toWindow(run);
    await consumerHoldsCurrent(run);
  },
  act: (run, invocation) => run.vendReporting(invocation, 20, reportedGeneration(run)),
  compete: reportingConsumer(20),
  followUp: reportAgain(20),
};
