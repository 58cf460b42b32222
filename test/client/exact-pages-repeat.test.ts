import { describe, expect, it } from "vitest";
import { type ExactFetchDeps, exactPages } from "../../lib/client/exact-fetch.js";
import { type AccessToken, ExactApiError } from "../../lib/client/index.js";

// A __next back to a page already fetched (a server bug, a proxy, a cached page) would loop
// without end, each turn a call charged to the shared rate budget: exactPages refuses it.

const token: AccessToken = {
  accessToken: "not-a-real-token",
  tokenType: "Bearer",
  expiresAt: "2026-11-26T12:10:00.000Z",
  generation: 1,
  baseUrl: "https://start.exactonline.nl",
  division: 123,
};

function pagesOf(nexts: readonly string[]): { deps: ExactFetchDeps; urls: string[] } {
  const urls: string[] = [];
  const deps: ExactFetchDeps = {
    tokens: { getAccessToken: async () => token, invalidate: () => {} },
    rateBudget: undefined,
    now: Date.now,
    fetch: async (input) => {
      urls.push(String(input));
      return Response.json({ d: { results: [{ ID: urls.length }], __next: nexts[urls.length - 1] } });
    },
  };
  return { deps, urls };
}

async function collect(deps: ExactFetchDeps): Promise<{ pages: unknown[][]; error: unknown }> {
  const pages: unknown[][] = [];
  try {
    for await (const page of exactPages(deps, "acme", "crm/Accounts")) pages.push(page);
    return { pages, error: undefined };
  } catch (error) {
    return { pages, error };
  }
}

describe("exactPages", () => {
  it.each([
    ["the page itself", ["https://start.exactonline.nl/api/v1/123/crm/Accounts"], 1],
    [
      "an earlier page",
      [
        "https://start.exactonline.nl/api/v1/123/crm/Accounts?$skiptoken=guid'1'",
        "https://start.exactonline.nl/api/v1/123/crm/Accounts",
      ],
      2,
    ],
  ])(
    "throws ExactApiError when __next leads back to %s, fetching it no more",
    async (_what, nexts, calls) => {
      const { deps, urls } = pagesOf(nexts);

      const { pages, error } = await collect(deps);

      expect(error).toBeInstanceOf(ExactApiError);
      expect((error as Error).message).toContain("a page already fetched");
      expect(urls).toHaveLength(calls);
      expect(pages).toHaveLength(calls);
    },
  );
});
