import { Role, ServicePrincipal } from "aws-cdk-lib/aws-iam";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalDynamo, startDynalite } from "../../lib/local/dynalite.js";
import { deployFirst, deployUpdate, principalsOf, synthGrants } from "./cfn-grant-deploys.js";

// Finding (high): VendGrants names its custom resources by position (`Grant${n}`), not by
// connection. Drop an earlier connection from `grantVend(fn, { connections })` and every later
// one shifts to another logical ID: CloudFormation updates `Grant1` from acme to beta (ADD beta,
// then deletes the old physical resource: DELETE acme) and deletes `Grant2` (DELETE beta). The
// consumer loses beta, which its code still grants, until the next deploy that touches it:
// AccessDenied in production after an ordinary code change.

const PRINCIPAL = "arn:aws:iam::123456789012:role/reporting";

describe("grantVend: a consumer's grants across a deploy that drops one connection", () => {
  let dynamo: LocalDynamo;
  let tableName: string;
  beforeAll(async () => {
    dynamo = await startDynalite();
    tableName = await dynamo.createTable();
  });
  afterAll(() => dynamo.close());

  const version = (connections: string[]) =>
    synthGrants(
      (broker, consumer) => {
        const role = new Role(consumer, "ReportingRole", {
          assumedBy: new ServicePrincipal("lambda.amazonaws.com"),
          roleName: "reporting",
        });
        broker.grantVend(role, { connections });
      },
      tableName,
      { ReportingRole: "reporting" },
    );

  it("keeps beta granted when acme leaves the list", async () => {
    const v1 = version(["acme", "beta"]);
    const v2 = version(["beta"]);

    await deployFirst(dynamo.client, v1);
    expect(await principalsOf(dynamo.client, tableName, "beta")).toEqual([PRINCIPAL]);
    await deployUpdate(dynamo.client, v1, v2);

    expect(await principalsOf(dynamo.client, tableName, "acme")).toEqual([]);
    // Fails: the grant of beta, still in the consumer's code, was deleted by the update.
    expect(await principalsOf(dynamo.client, tableName, "beta")).toEqual([PRINCIPAL]);
  }, 120_000);
});
