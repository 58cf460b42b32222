import { describe, expect, it } from "vitest";
import { ChainBusy, ReauthRequired } from "../../lib/errors.js";
import { toEdgeError } from "../../lib/handlers/error-boundary.js";
import { formatErrorMessage, parseErrorMessage } from "../../lib/handlers/error-message.js";

describe("error message format", () => {
  it("round-trips retryAfterSeconds", () => {
    const text = formatErrorMessage("chain busy", 3);
    expect(text).toBe("chain busy (retryAfterSeconds=3)");
    expect(parseErrorMessage(text)).toEqual({ message: "chain busy", retryAfterSeconds: 3 });
  });

  it("leaves non-retryable messages alone", () => {
    expect(parseErrorMessage(formatErrorMessage("connect again", undefined))).toEqual({
      message: "connect again",
      retryAfterSeconds: undefined,
    });
  });

  it("keeps the error name as errorType at the edge", () => {
    const edge = toEdgeError(new ChainBusy("busy", { retryAfterSeconds: 2 }));
    expect(edge.name).toBe("ChainBusy");
    expect(edge.message).toBe("busy (retryAfterSeconds=2)");
    expect(toEdgeError(new ReauthRequired("log in")).message).toBe("log in");
  });

  it("hides an unexpected error's message behind InternalError", () => {
    const edge = toEdgeError(new Error("secret-ish internals"));
    expect(edge.name).toBe("InternalError");
    expect(edge.message).not.toContain("internals");
  });
});
