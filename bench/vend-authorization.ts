import { VendAuthorization } from "../lib/auth/authorization-settings.js";
import { GrantStore } from "../lib/auth/grant-store.js";
import { grantPrincipalOf } from "../lib/auth/principal.js";
import { StsIdentityVerifier } from "../lib/auth/sts-identity-verifier.js";
import { VendAuthorizer } from "../lib/auth/vend-authorizer.js";
import { IdentitySigner } from "../lib/client/identity-signer.js";
import { countingDynamo, resetCounts } from "../lib/local/counting-dynamo.js";
import { startDynalite } from "../lib/local/dynalite.js";
import { createLogger } from "../lib/log/logger.js";
import { startMotoIdentities } from "../test/auth/moto-identities.js";
import { findPythonTool, installCommand, PythonTool } from "../test/support/python-tools.js";
import { percentile } from "./stats.js";

/** One way a vend's caller check can go, measured. */
export interface AuthorizationCase {
  readonly name: string;
  readonly p50Ms: number;
  readonly p95Ms: number;
  readonly stsCallsPerVend: number;
  readonly dynamoReadsPerVend: number;
}

const SAMPLES = 40;
const SERVER_ID = "bench-broker";
const REGION = "eu-west-1";

/**
 * What per-connection authorization adds to a vend (issue 10), before the vend's own work:
 * token-vend's authorizer (the same classes token-vend builds) against moto_server with
 * signatures enforced (STS) and dynalite (grants). Cold: a new container and a new signature
 * (one STS call, two grant reads). Warm: the container's caches (a signature is reused for 5
 * minutes by the client; a grant is remembered for a minute).
 *
 * @returns undefined when moto_server is not installed (the bench prints how to install it)
 */
export async function measureVendAuthorization(): Promise<AuthorizationCase[] | undefined> {
  if (!findPythonTool(PythonTool.MotoServer)) return undefined;
  const ids = await startMotoIdentities();
  const dynamo = await startDynalite();
  try {
    const tableName = await dynamo.createTable();
    const { client, counts } = countingDynamo(dynamo.endpoint);
    await new GrantStore({ tableName, client }).grant("acme", grantPrincipalOf(ids.roleA.arn));
    let stsCalls = 0;
    const countingFetch: typeof fetch = (input, init) => {
      stsCalls += 1;
      return fetch(input, init);
    };
    const log = createLogger({ serviceName: "bench", level: "ERROR" });
    const container = () =>
      new VendAuthorizer({
        settings: { mode: VendAuthorization.PerConnection, serverId: SERVER_ID, region: REGION },
        grants: new GrantStore({ tableName, client }),
        verifier: new StsIdentityVerifier({
          serverId: SERVER_ID,
          region: REGION,
          endpoint: ids.moto.endpoint,
          fetch: countingFetch,
        }),
        log,
      });
    // SigV4 is deterministic: two signings in the same second are the same request. Each new
    // signature is dated a second earlier than the last, as a fleet of containers' would differ.
    let signatures = 0;
    const firstMs = Date.now();
    const signature = () => {
      signatures += 1;
      const signedAtMs = firstMs - signatures * 1000;
      return new IdentitySigner({
        serverId: SERVER_ID,
        region: REGION,
        stsEndpoint: ids.moto.endpoint,
        credentials: async () => ids.roleA.credentials,
        now: () => signedAtMs,
      }).identity();
    };

    const measure = async (
      name: string,
      prepare: () => Promise<{ authorizer: VendAuthorizer; identity: Awaited<ReturnType<typeof signature>> }>,
    ): Promise<AuthorizationCase> => {
      const latencies: number[] = [];
      let sts = 0;
      let reads = 0;
      for (let i = 0; i < SAMPLES; i += 1) {
        const { authorizer, identity } = await prepare();
        resetCounts(counts);
        stsCalls = 0;
        const startedMs = performance.now();
        await authorizer.authorize("acme", identity);
        latencies.push(performance.now() - startedMs);
        sts += stsCalls;
        reads += counts.GetItem ?? 0;
      }
      return {
        name,
        p50Ms: percentile(latencies, 50),
        p95Ms: percentile(latencies, 95),
        stsCallsPerVend: sts / SAMPLES,
        dynamoReadsPerVend: reads / SAMPLES,
      };
    };

    const warm = container();
    const kept = await signature();
    await warm.authorize("acme", kept);
    return [
      await measure("cold: new container, new signature", async () => ({
        authorizer: container(),
        identity: await signature(),
      })),
      await measure("warm container, new signature (every 5 min)", async () => ({
        authorizer: warm,
        identity: await signature(),
      })),
      await measure("warm container, same signature", async () => ({ authorizer: warm, identity: kept })),
    ];
  } finally {
    await dynamo.close();
    await ids.moto.close();
  }
}

/** What the bench prints when moto_server is missing. */
export const AUTHORIZATION_SKIPPED = `   skipped: moto_server not found; install it with \`${installCommand(PythonTool.MotoServer)}\``;
