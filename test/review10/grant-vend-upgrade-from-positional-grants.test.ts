import { readFileSync } from "node:fs";
import { Role, ServicePrincipal } from "aws-cdk-lib/aws-iam";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GrantStore } from "../../lib/auth/grant-store.js";
import { type LocalDynamo, startDynalite } from "../../lib/local/dynalite.js";
import { CONSUMER, deployFirst, deployUpdate, type GrantResource, synthGrants } from "./cfn-grant-deploys.js";

// The first deploy after the fix, over grants the positional version wrote. The fixture holds
// that version's resources (`Grant1`, `Grant2`: ADD/DELETE of the bare principal key in
// `principals`) as it synthesized them for a role granted acme and beta, into the table
// "positional-grants". CloudFormation creates the new resources (their logical IDs are new) and
// deletes the old ones, with their old properties, in the cleanup phase.

const TABLE = "positional-grants";
const PRINCIPAL = "arn:aws:iam::123456789012:role/reporting";
const HELD = { principal: PRINCIPAL, stackName: CONSUMER, constructPath: "ReportingRole" };

const positional = (): Map<string, GrantResource> =>
  new Map(
    Object.entries(
      JSON.parse(
        readFileSync(new URL("fixtures/positional-vend-grants.json", import.meta.url), "utf8"),
      ) as Record<string, GrantResource>,
    ),
  );

const current = (): Map<string, GrantResource> =>
  synthGrants(
    (broker, consumer) => {
      const role = new Role(consumer, "ReportingRole", {
        assumedBy: new ServicePrincipal("lambda.amazonaws.com"),
        roleName: "reporting",
      });
      broker.grantVend(role, { connections: ["acme", "beta"] });
    },
    TABLE,
    { ReportingRole: "reporting" },
  );

describe("grantVend: the first deploy over grants written by the positional version", () => {
  let dynamo: LocalDynamo;
  let grants: GrantStore;
  beforeAll(async () => {
    dynamo = await startDynalite();
    await dynamo.createTable(TABLE);
    grants = new GrantStore({ tableName: TABLE, client: dynamo.client });
  });
  afterAll(() => dynamo.close());

  it("keeps both connections granted, now held by the grantee's resources", async () => {
    const before = positional();
    await deployFirst(dynamo.client, before);
    expect((await grants.list("acme")).principals).toEqual([PRINCIPAL]);

    await deployUpdate(dynamo.client, before, current());

    for (const connectionId of ["acme", "beta"]) {
      expect(await grants.isGranted(connectionId, PRINCIPAL)).toBe(true);
      expect(await grants.list(connectionId)).toMatchObject({ principals: [], deployed: [HELD] });
    }
  }, 120_000);

  it("removes a CLI grant of the same principal and connection with the old grant, leaving the deployed one", async () => {
    const before = positional();
    await deployFirst(dynamo.client, before);
    await grants.grant("acme", PRINCIPAL);

    await deployUpdate(dynamo.client, before, current());

    expect(await grants.list("acme")).toMatchObject({ principals: [], deployed: [HELD] });
    expect(await grants.isGranted("acme", PRINCIPAL)).toBe(true);
  }, 120_000);
});
