import { GetItemCommand } from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ALL_CONNECTIONS, type DeployedGrant, GrantStore } from "../../lib/auth/grant-store.js";
import { grantsKey } from "../../lib/chain/table-definition.js";
import { type LocalDynamo, startDynalite } from "../../lib/local/dynalite.js";
import { writeDeployedGrant } from "../support/deployed-grant.js";

const ROLE_A = "arn:aws:iam::123456789012:role/consumer-a";
const ROLE_B = "arn:aws:iam::123456789012:role/consumer-b";
const USER = "arn:aws:iam::123456789012:user/team/alice";

describe("GrantStore (dynalite)", () => {
  let dynamo: LocalDynamo;
  let tableName: string;
  let grants: GrantStore;
  beforeAll(async () => {
    dynamo = await startDynalite();
    tableName = await dynamo.createTable();
    grants = new GrantStore({ tableName, client: dynamo.client });
  });
  afterAll(() => dynamo.close());

  it("serves a connection only to the principals granted it", async () => {
    await grants.grant("acme", ROLE_A);

    expect(await grants.isGranted("acme", ROLE_A)).toBe(true);
    expect(await grants.isGranted("acme", ROLE_B)).toBe(false);
    expect(await grants.isGranted("beta", ROLE_A)).toBe(false);
  });

  it("lists a connection's grants and the all-connections ones apart", async () => {
    await grants.grant("listed", ROLE_B);
    await grants.grant("listed", USER);
    await grants.grant(ALL_CONNECTIONS, ROLE_A);

    expect(await grants.list("listed")).toEqual({
      principals: [ROLE_B, USER],
      deployed: [],
      allConnections: [ROLE_A],
      allConnectionsDeployed: [],
    });
    expect(await grants.isGranted("any-connection", ROLE_A)).toBe(true);
    await grants.revoke(ALL_CONNECTIONS, ROLE_A);
    expect(await grants.isGranted("any-connection", ROLE_A)).toBe(false);
  });

  it("keeps every grant when 20 principals are granted one connection at once", async () => {
    const principals = Array.from({ length: 20 }, (_, i) => `arn:aws:iam::123456789012:role/concurrent-${i}`);

    await Promise.all(principals.map((principal) => grants.grant("busy", principal)));

    expect((await grants.list("busy")).principals).toEqual([...principals].sort());
  });

  it("writes the same grant twice as one", async () => {
    await grants.grant("twice", ROLE_A);
    await grants.grant("twice", ROLE_A);

    expect((await grants.list("twice")).principals).toEqual([ROLE_A]);
  });

  it("revokes one principal and leaves the others", async () => {
    await grants.grant("revoked", ROLE_A);
    await grants.grant("revoked", ROLE_B);

    const revoked = await grants.revoke("revoked", ROLE_A);

    expect(revoked).toEqual({ granted: true, deployed: [] });
    expect(await grants.isGranted("revoked", ROLE_A)).toBe(false);
    expect(await grants.isGranted("revoked", ROLE_B)).toBe(true);
  });

  it("says so, and writes nothing, when revoking a grant that does not exist", async () => {
    const revoked = await grants.revoke("never-granted", ROLE_A);

    const item = await dynamo.client.send(
      new GetItemCommand({ TableName: tableName, Key: { pk: { S: grantsKey("never-granted") } } }),
    );
    expect(revoked).toEqual({ granted: false, deployed: [] });
    expect(item.Item).toBeUndefined();
  });

  describe("grants written at deploy", () => {
    const deploy = (connectionId: string, grant: DeployedGrant) =>
      writeDeployedGrant(dynamo.client, tableName, connectionId, grant);
    const reports = { principal: ROLE_A, stackName: "Consumer", constructPath: "Reports" };
    const exports = { principal: ROLE_A, stackName: "Consumer", constructPath: "Nested/Exports" };
    const auditor = { principal: USER, stackName: "Audit", constructPath: "Auditor" };

    it("serves a connection to a principal granted at deploy, and lists it with its holder", async () => {
      await deploy("deployed", reports);
      await grants.grant("deployed", ROLE_B);

      expect(await grants.isGranted("deployed", ROLE_A)).toBe(true);
      expect(await grants.isGranted("deployed", USER)).toBe(false);
      expect(await grants.list("deployed")).toMatchObject({ principals: [ROLE_B], deployed: [reports] });
    });

    it("serves every connection to a principal granted all of them at deploy", async () => {
      await deploy(ALL_CONNECTIONS, auditor);

      expect(await grants.isGranted("any-connection", USER)).toBe(true);
      expect((await grants.list("any-connection")).allConnectionsDeployed).toEqual([auditor]);
      await grants.revoke(ALL_CONNECTIONS, USER);
      expect(await grants.isGranted("any-connection", USER)).toBe(false);
    });

    it("keeps a principal granted while one of two holders' grants is left", async () => {
      await deploy("shared", reports);
      await deploy("shared", exports);

      await writeDeployedGrant(dynamo.client, tableName, "shared", exports, "DELETE");

      expect(await grants.isGranted("shared", ROLE_A)).toBe(true);
      expect((await grants.list("shared")).deployed).toEqual([reports]);
    });

    it("revokes the principal's CLI grant and every deployed one, and leaves other principals'", async () => {
      await grants.grant("revoke-all", ROLE_A);
      await deploy("revoke-all", reports);
      await deploy("revoke-all", exports);
      await deploy("revoke-all", auditor);

      const revoked = await grants.revoke("revoke-all", ROLE_A);

      expect(revoked).toEqual({ granted: true, deployed: [exports, reports] });
      expect(await grants.isGranted("revoke-all", ROLE_A)).toBe(false);
      expect(await grants.list("revoke-all")).toMatchObject({ principals: [], deployed: [auditor] });
    });

    it("reports exactly what it removed while deploys write grants of the same principal", async () => {
      const holders = Array.from({ length: 20 }, (_, i) => ({ ...reports, constructPath: `Fn${i}` }));
      await deploy("racing", reports);

      const [revoked] = await Promise.all([
        grants.revoke("racing", ROLE_A),
        ...holders.map((holder) => deploy("racing", holder)),
      ]);

      // Each grant either went with the revoke (and is reported) or stays: none lost, none twice.
      const left = (await grants.list("racing")).deployed;
      const accounted = [...(revoked?.deployed ?? []), ...left].map((grant) => grant.constructPath);
      expect(revoked?.deployed).toContainEqual(reports);
      expect(accounted.sort()).toEqual([reports, ...holders].map((grant) => grant.constructPath).sort());
    });

    it("revokes a principal granted only at deploy", async () => {
      await deploy("revoke-deployed", reports);

      const revoked = await grants.revoke("revoke-deployed", ROLE_A);
      const again = await grants.revoke("revoke-deployed", ROLE_A);

      expect(revoked).toEqual({ granted: false, deployed: [reports] });
      expect(again).toEqual({ granted: false, deployed: [] });
      expect(await grants.isGranted("revoke-deployed", ROLE_A)).toBe(false);
    });
  });
});
