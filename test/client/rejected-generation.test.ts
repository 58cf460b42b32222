import { InvokeCommand, type InvokeCommandOutput, LambdaClient } from "@aws-sdk/client-lambda";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { ChainBusy, InvalidVendAnswer, TokenClient, ValidationError } from "../../lib/client/index.js";
import { toEdgeError } from "../../lib/handlers/error-boundary.js";
import { deferred, functionError, ok, sentEvent, T0, vendAnswer } from "./support.js";

// The client's half of issue 11's vend contract, against a mocked invoke: what `invalidate` makes
// the next vend report, and how the expiry of a cached token is counted.

let nowMs = T0;
const lambda = new LambdaClient({ region: "eu-west-1" });
const lambdaMock = mockClient(lambda);
let client: TokenClient;

const events = () => lambdaMock.commandCalls(InvokeCommand).map((call) => sentEvent(call.args[0].input));
const brokerFailure = (thrown: Error): InvokeCommandOutput => {
  const edge = toEdgeError(thrown);
  return functionError(edge.name, edge.message);
};
/** An answer of a broker that speaks issue 11: `expiresInSeconds` and `clientId`. */
const answer = (generation: number, expiresInSeconds: number) =>
  ok(vendAnswer(generation, expiresInSeconds, T0, { expiresInSeconds, clientId: "app-1" }));

beforeEach(() => {
  nowMs = T0;
  lambdaMock.reset();
  client = new TokenClient({ lambda, now: () => nowMs, functionName: "TokenVend" });
});

describe("TokenClient.invalidate: the refused generation", () => {
  it("makes the next vend report the cached token's generation, once token-vend answers no longer", async () => {
    lambdaMock.on(InvokeCommand).resolvesOnce(answer(3, 600)).resolves(answer(4, 600));
    await client.getAccessToken("acme");

    client.invalidate("acme");
    const served = await client.getAccessToken("acme");
    // 600 s left < 600 + 5: token-vend again, with nothing left to report.
    await client.getAccessToken("acme", { minValiditySeconds: 600 });

    expect(served.generation).toBe(4);
    expect(events()).toStrictEqual([
      { connectionId: "acme", minValiditySeconds: 30 },
      { connectionId: "acme", minValiditySeconds: 30, rejectedGeneration: 3 },
      { connectionId: "acme", minValiditySeconds: 600 },
    ]);
  });

  it("sends no field when nothing was cached (an older broker refuses unknown fields)", async () => {
    lambdaMock.on(InvokeCommand).resolves(answer(1, 600));

    client.invalidate("acme");
    await client.getAccessToken("acme");

    expect(events()).toStrictEqual([{ connectionId: "acme", minValiditySeconds: 30 }]);
  });

  it("keeps reporting after a retryable failure, until token-vend answers", async () => {
    lambdaMock
      .on(InvokeCommand)
      .resolvesOnce(answer(3, 600))
      .resolvesOnce(brokerFailure(new ChainBusy("busy", { retryAfterSeconds: 1 })))
      .resolves(answer(4, 600));
    await client.getAccessToken("acme");
    client.invalidate("acme");

    await expect(client.getAccessToken("acme")).rejects.toBeInstanceOf(ChainBusy);
    const served = await client.getAccessToken("acme");

    expect(served.generation).toBe(4);
    expect(events().map((event) => (event as { rejectedGeneration?: number }).rejectedGeneration)).toEqual([
      undefined,
      3,
      3,
    ]);
  });

  it.each([
    ["an older broker", "invalid event: unrecognized key rejectedGeneration"],
    [
      "a chain restarted below it",
      'connection "acme": rejectedGeneration 3 is above its current generation 1',
    ],
  ])("vends once more without the report when token-vend refuses it (%s)", async (_what, message) => {
    lambdaMock
      .on(InvokeCommand)
      .resolvesOnce(answer(3, 600))
      .resolvesOnce(brokerFailure(new ValidationError(message)))
      .resolves(answer(1, 600));
    await client.getAccessToken("acme");
    client.invalidate("acme");

    const served = await client.getAccessToken("acme");
    await client.getAccessToken("acme", { minValiditySeconds: 600 });

    expect(served.generation).toBe(1);
    expect(events().slice(1)).toStrictEqual([
      { connectionId: "acme", minValiditySeconds: 30, rejectedGeneration: 3 },
      { connectionId: "acme", minValiditySeconds: 30 },
      { connectionId: "acme", minValiditySeconds: 600 },
    ]);
  });

  it("throws the plain vend's ValidationError when that one is refused too, and reports no more", async () => {
    const tooMuch = new ValidationError("invalid event: minValiditySeconds: too big");
    lambdaMock
      .on(InvokeCommand)
      .resolvesOnce(answer(3, 600))
      .resolvesOnce(brokerFailure(new ValidationError("invalid event: unrecognized key rejectedGeneration")))
      .resolvesOnce(brokerFailure(tooMuch))
      .resolves(answer(3, 600));
    await client.getAccessToken("acme");
    client.invalidate("acme");

    await expect(client.getAccessToken("acme")).rejects.toThrow(tooMuch.message);
    await client.getAccessToken("acme");

    expect(events()).toHaveLength(4);
    expect(events()[3]).toStrictEqual({ connectionId: "acme", minValiditySeconds: 30 });
  });

  it("keeps a newer cached token when told an older generation was refused", async () => {
    lambdaMock.on(InvokeCommand).resolves(answer(5, 600));
    const cached = await client.getAccessToken("acme");

    client.invalidate("acme", { generation: 4 });

    expect(await client.getAccessToken("acme")).toBe(cached);
    expect(events()).toHaveLength(1);
  });

  it("lets callers refused the same generation share the one vend that reports it", async () => {
    const pending = deferred<InvokeCommandOutput>();
    lambdaMock
      .on(InvokeCommand)
      .resolvesOnce(answer(3, 600))
      .callsFakeOnce(() => pending.promise);
    await client.getAccessToken("acme");

    client.invalidate("acme", { generation: 3 });
    const first = client.getAccessToken("acme");
    await vi.waitFor(() => expect(events()).toHaveLength(2));
    client.invalidate("acme", { generation: 3 });
    const second = client.getAccessToken("acme");
    pending.resolve(answer(4, 600));

    expect([(await first).generation, (await second).generation]).toEqual([4, 4]);
    expect(events()).toHaveLength(2);
  });
});

describe("TokenClient: expiry on the client's own clock", () => {
  it("counts expiresInSeconds from when the answer arrived, not from when it was asked for", async () => {
    const pending = deferred<InvokeCommandOutput>();
    lambdaMock
      .on(InvokeCommand)
      .callsFakeOnce(() => pending.promise)
      .resolves(answer(2, 600));
    const asked = client.getAccessToken("acme");
    nowMs += 10_000;
    pending.resolve(answer(1, 100));
    await asked;
    const arrivedMs = nowMs;

    // 100 s from arrival, less 30 + 5: from memory until then, not 1 ms longer.
    nowMs = arrivedMs + 65_000;
    expect((await client.getAccessToken("acme")).generation).toBe(1);
    nowMs += 1;
    expect((await client.getAccessToken("acme")).generation).toBe(2);
  });

  it("passes expiresInSeconds and clientId through, and refuses malformed ones", async () => {
    lambdaMock
      .on(InvokeCommand)
      .resolvesOnce(answer(1, 600))
      .resolvesOnce(ok({ ...vendAnswer(1, 600, T0), expiresInSeconds: -1 }))
      .resolvesOnce(ok({ ...vendAnswer(1, 600, T0), expiresInSeconds: 1.5 }))
      .resolvesOnce(ok({ ...vendAnswer(1, 600, T0), clientId: 7 }));

    expect(await client.getAccessToken("acme")).toMatchObject({ expiresInSeconds: 600, clientId: "app-1" });
    for (const field of ["expiresInSeconds", "expiresInSeconds", "clientId"]) {
      await expect(client.getAccessToken("other")).rejects.toThrow(
        new InvalidVendAnswer(`token-vend's answer has no valid "${field}"`),
      );
    }
  });
});
