import { Role, ServicePrincipal } from "aws-cdk-lib/aws-iam";
import { Code, Function as LambdaFunction, Runtime } from "aws-cdk-lib/aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalDynamo, startDynalite } from "../../lib/local/dynalite.js";
import { deployFirst, deployUpdate, principalsOf, synthGrants } from "./cfn-grant-deploys.js";

// Finding (medium), fixed: grants were set members without an owner, and VendGrants is one per
// grantee *construct* (Names.uniqueId(grantee)), while the key written is the grantee's *role*.
// Two functions sharing one role, each granted acme, wrote the same member twice; removing one of
// them DELETEd the member and the other function, still granted in code, got AccessDenied. Each
// grantee now writes its own element (the role's key and the grantee's path), so the other's stays.

const PRINCIPAL = "arn:aws:iam::123456789012:role/shared";

describe("grantVend: two functions sharing one role", () => {
  let dynamo: LocalDynamo;
  let tableName: string;
  beforeAll(async () => {
    dynamo = await startDynalite();
    tableName = await dynamo.createTable();
  });
  afterAll(() => dynamo.close());

  const version = (functions: string[]) =>
    synthGrants(
      (broker, consumer) => {
        const role = new Role(consumer, "SharedRole", {
          assumedBy: new ServicePrincipal("lambda.amazonaws.com"),
          roleName: "shared",
        });
        for (const name of functions) {
          const fn = new LambdaFunction(consumer, name, {
            runtime: Runtime.NODEJS_24_X,
            handler: "index.handler",
            code: Code.fromInline("exports.handler = async () => 1;"),
            role,
          });
          broker.grantVend(fn, { connections: ["acme"] });
        }
      },
      tableName,
      { SharedRole: "shared" },
    );

  it("keeps acme granted to the role while one of its functions still asks for it", async () => {
    const v1 = version(["Reports", "Exports"]);
    const v2 = version(["Reports"]);

    await deployFirst(dynamo.client, v1);
    await deployUpdate(dynamo.client, v1, v2);

    expect(await principalsOf(dynamo.client, tableName, "acme")).toEqual([PRINCIPAL]);
  }, 120_000);

  it("takes acme back once none of the role's functions asks for it", async () => {
    const v1 = version(["Reports", "Exports"]);
    const v2 = version([]);

    await deployFirst(dynamo.client, v1);
    await deployUpdate(dynamo.client, v1, v2);

    expect(await principalsOf(dynamo.client, tableName, "acme")).toEqual([]);
  }, 120_000);
});
