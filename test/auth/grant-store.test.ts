import { GetItemCommand } from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ALL_CONNECTIONS, GrantStore } from "../../lib/auth/grant-store.js";
import { grantsKey } from "../../lib/chain/table-definition.js";
import { type LocalDynamo, startDynalite } from "../../lib/local/dynalite.js";

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

    expect(await grants.list("listed")).toEqual({ principals: [ROLE_B, USER], allConnections: [ROLE_A] });
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

    expect(revoked).toBe(true);
    expect(await grants.isGranted("revoked", ROLE_A)).toBe(false);
    expect(await grants.isGranted("revoked", ROLE_B)).toBe(true);
  });

  it("says so, and writes nothing, when revoking a grant that does not exist", async () => {
    const revoked = await grants.revoke("never-granted", ROLE_A);

    const item = await dynamo.client.send(
      new GetItemCommand({ TableName: tableName, Key: { pk: { S: grantsKey("never-granted") } } }),
    );
    expect(revoked).toBe(false);
    expect(item.Item).toBeUndefined();
  });
});
