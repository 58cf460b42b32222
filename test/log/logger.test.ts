import { afterEach, beforeEach, describe, expect, it, type MockInstance, vi } from "vitest";
import { createLogger } from "../../lib/log/logger.js";
import { REDACTED, registerSecret } from "../../lib/log/redactor.js";

const TOKEN = "stampNL001.gAAA!IAAAAJx7yq-1zQ2mVbFdXm_8uPZr0b3yKkK1Yq8sWq9o1fEUe3c7s!a";
const CLIENT_SECRET = "registered-client-secret-value";

/**
 * Powertools writes through its own `Console` on process.stdout / process.stderr (not the
 * global console, unless POWERTOOLS_DEV is set), so the streams are what we capture.
 */
describe("createLogger", () => {
  let lines: string[];
  let spies: MockInstance[];

  beforeEach(() => {
    vi.stubEnv("POWERTOOLS_DEV", "");
    vi.stubEnv("AWS_LAMBDA_LOG_LEVEL", "");
    lines = [];
    const capture = (chunk: unknown): boolean => {
      lines.push(String(chunk));
      return true;
    };
    spies = [
      vi.spyOn(process.stdout, "write").mockImplementation(capture),
      vi.spyOn(process.stderr, "write").mockImplementation(capture),
    ];
  });

  afterEach(() => {
    for (const spy of spies) spy.mockRestore();
    vi.unstubAllEnvs();
  });

  function onlyLine(): { text: string; json: Record<string, unknown> } {
    expect(lines).toHaveLength(1);
    const text = lines[0] ?? "";
    return { text, json: JSON.parse(text) as Record<string, unknown> };
  }

  it("keeps Powertools' standard keys and ordinary fields", () => {
    const logger = createLogger({ serviceName: "token-vend", persistentKeys: { fn: "vend" } });

    logger.info("vend ok", { connectionId: "conn-1", generation: 7 });

    const { json } = onlyLine();
    expect(json).toMatchObject({
      level: "INFO",
      message: "vend ok",
      service: "token-vend",
      fn: "vend",
      connectionId: "conn-1",
      generation: 7,
    });
    expect(typeof json.timestamp).toBe("string");
  });

  it("redacts a token in the message", () => {
    const logger = createLogger({ serviceName: "test" });

    logger.info(`got ${TOKEN} from Exact`);

    const { text, json } = onlyLine();
    expect(text).not.toContain(TOKEN);
    expect(json.message).toBe(`got ${REDACTED} from Exact`);
  });

  it("redacts a token and a registered secret under innocent keys of an extra object", () => {
    registerSecret(CLIENT_SECRET);
    const logger = createLogger({ serviceName: "test" });

    logger.warn("odd response", {
      details: { body: `{"x":"${TOKEN}"}`, note: `used ${CLIENT_SECRET}` },
      status: 400,
    });

    const { text, json } = onlyLine();
    expect(text).not.toContain(TOKEN);
    expect(text).not.toContain(CLIENT_SECRET);
    expect(text).toContain(REDACTED);
    expect(json).toMatchObject({ status: 400, details: { note: `used ${REDACTED}` } });
  });

  it("redacts values under sensitive keys, whatever they look like", () => {
    const logger = createLogger({ serviceName: "test" });

    logger.info("token response", {
      response: { access_token: "short-access", refresh_token: "short-refresh", expires_in: "600" },
      headers: { Authorization: "Bearer abc", "set-cookie": "session=xyz" },
      password: "pw",
    });

    const { text, json } = onlyLine();
    for (const secret of ["short-access", "short-refresh", "Bearer abc", "session=xyz"]) {
      expect(text).not.toContain(secret);
    }
    expect(json).toMatchObject({
      response: { access_token: REDACTED, refresh_token: REDACTED, expires_in: "600" },
      headers: { Authorization: REDACTED, "set-cookie": REDACTED },
      password: REDACTED,
    });
  });

  it("redacts a token in a nested error cause, keeping the error readable", () => {
    const logger = createLogger({ serviceName: "test" });
    const root = Object.assign(new Error(`Exact said no to ${TOKEN}`), { code: "ECONNRESET" });
    const error = new Error("refresh failed", { cause: new Error("token call failed", { cause: root }) });

    logger.error("refresh failed", error);

    const { text, json } = onlyLine();
    expect(text).not.toContain(TOKEN);
    const logged = json.error as Record<string, unknown>;
    expect(logged).toMatchObject({ name: "Error", message: "refresh failed" });
    expect(typeof logged.location).toBe("string");
    const inner = (logged.cause as Record<string, unknown>).cause as Record<string, unknown>;
    expect(inner).toMatchObject({ message: `Exact said no to ${REDACTED}`, code: "ECONNRESET" });
  });

  it("redacts persistent keys and child loggers' lines too", () => {
    const logger = createLogger({ serviceName: "test" });
    logger.appendKeys({ lastToken: TOKEN });
    const child = logger.createChild({ persistentKeys: { component: "lease" } });

    child.info("child line");

    const { text, json } = onlyLine();
    expect(text).not.toContain(TOKEN);
    expect(json).toMatchObject({ component: "lease", lastToken: REDACTED });
  });

  it("does not throw on a cyclic extra object", () => {
    const logger = createLogger({ serviceName: "test" });
    const cyclic: Record<string, unknown> = { id: "x" };
    cyclic.self = cyclic;

    logger.info("cyclic", { cyclic });

    expect(onlyLine().json).toMatchObject({ cyclic: { id: "x", self: "[Circular]" } });
  });

  describe("level", () => {
    it("defaults to INFO", () => {
      vi.stubEnv("POWERTOOLS_LOG_LEVEL", "");
      vi.stubEnv("LOG_LEVEL", "");
      const logger = createLogger({ serviceName: "test" });

      logger.debug("hidden");

      expect(lines).toHaveLength(0);
      expect(logger.getLevelName()).toBe("INFO");
    });

    it.each(["POWERTOOLS_LOG_LEVEL", "LOG_LEVEL"])("follows %s", (variable) => {
      vi.stubEnv("POWERTOOLS_LOG_LEVEL", "");
      vi.stubEnv("LOG_LEVEL", "");
      vi.stubEnv(variable, "DEBUG");
      const logger = createLogger({ serviceName: "test" });

      logger.debug("shown");

      expect(onlyLine().json.level).toBe("DEBUG");
    });

    it("takes an explicit level over the environment", () => {
      vi.stubEnv("POWERTOOLS_LOG_LEVEL", "DEBUG");
      const logger = createLogger({ serviceName: "test", level: "WARN" });

      logger.info("hidden");

      expect(lines).toHaveLength(0);
    });
  });
});
