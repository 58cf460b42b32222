import { Role, ServicePrincipal } from "aws-cdk-lib/aws-iam";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalDynamo, startDynalite } from "../../lib/local/dynalite.js";
import { deployFirst, deployUpdate, principalsOf, synthGrants } from "./cfn-grant-deploys.js";

// Finding (high), fixed: VendGrants named its custom resources by position (`Grant${n}`), not by
// connection. Dropping an earlier connection from `grantVend(fn, { connections })` shifted every
// later one to another logical ID: CloudFormation updated `Grant1` from acme to beta (ADD beta,
// then deleted the old physical resource: DELETE acme) and deleted `Grant2` (DELETE beta). The
// consumer lost beta, which its code still granted: AccessDenied after an ordinary code change.
// The resources are now named after their connection, so dropping acme deletes acme's only.

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
    expect(await principalsOf(dynamo.client, tableName, "beta")).toEqual([PRINCIPAL]);
  }, 120_000);
});
