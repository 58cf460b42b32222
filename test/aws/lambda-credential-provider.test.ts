import { afterEach, describe, expect, it, vi } from "vitest";
import { defaultProvider } from "../../lib/aws/lambda-credential-provider.js";

// The bundles' stand-in for the SDK's default credential chain: what a Lambda function's
// environment offers must resolve as the SDK resolves it.

describe("defaultProvider (the bundles' credential chain)", () => {
  afterEach(() => vi.unstubAllEnvs());

  it("takes the function role's credentials from the environment, as Lambda sets them", async () => {
    vi.stubEnv("AWS_ACCESS_KEY_ID", "ASIAEXAMPLE");
    vi.stubEnv("AWS_SECRET_ACCESS_KEY", "secret-from-env");
    vi.stubEnv("AWS_SESSION_TOKEN", "token-from-env");

    const credentials = await defaultProvider()();

    expect(credentials).toMatchObject({
      accessKeyId: "ASIAEXAMPLE",
      secretAccessKey: "secret-from-env",
      sessionToken: "token-from-env",
    });
  });

  it("fails naming what it left out when nothing provides credentials", async () => {
    for (const name of [
      "AWS_ACCESS_KEY_ID",
      "AWS_SECRET_ACCESS_KEY",
      "AWS_SESSION_TOKEN",
      "AWS_CONTAINER_CREDENTIALS_FULL_URI",
      "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    ]) {
      vi.stubEnv(name, "");
    }
    vi.stubEnv("AWS_EC2_METADATA_DISABLED", "true");

    await expect(defaultProvider()()).rejects.toThrow(/lambda-credential-provider/);
  });

  it("reads the container credentials endpoint when one is set", async () => {
    vi.stubEnv("AWS_ACCESS_KEY_ID", "");
    vi.stubEnv("AWS_SECRET_ACCESS_KEY", "");
    const { createServer } = await import("node:http");
    const server = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          AccessKeyId: "ASIACONTAINER",
          SecretAccessKey: "secret-from-container",
          Token: "token-from-container",
          Expiration: new Date(Date.now() + 3_600_000).toISOString(),
        }),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as { port: number };
    vi.stubEnv("AWS_CONTAINER_CREDENTIALS_FULL_URI", `http://127.0.0.1:${port}/credentials`);
    try {
      const credentials = await defaultProvider()();
      expect(credentials).toMatchObject({
        accessKeyId: "ASIACONTAINER",
        sessionToken: "token-from-container",
      });
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
