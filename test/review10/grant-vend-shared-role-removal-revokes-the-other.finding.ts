import { Role, ServicePrincipal } from "aws-cdk-lib/aws-iam";
import { Code, Function as LambdaFunction, Runtime } from "aws-cdk-lib/aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalDynamo, startDynalite } from "../../lib/local/dynalite.js";
import { deployFirst, deployUpdate, principalsOf, synthGrants } from "./cfn-grant-deploys.js";

// Finding (medium): grants are set members without an owner count, and VendGrants is one per
// grantee *construct* (Names.uniqueId(grantee)), while the key written is the grantee's *role*.
// Two functions that share one role, each granted acme, write the same member twice; removing
// one of them (or its grantVend) DELETEs the member and the other function, still granted in
// code, gets AccessDenied. The README ("removes it when the grantee or the connection leaves the
// code") does not warn about it.

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

    // Fails: removing Exports deleted the role's one grant, which Reports still needs.
    expect(await principalsOf(dynamo.client, tableName, "acme")).toEqual([PRINCIPAL]);
  }, 120_000);
});
