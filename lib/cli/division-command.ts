import type { Broker } from "../broker.js";
import { MAX_DIVISION } from "../chain/division-setting.js";
import { ValidationError } from "../errors.js";
import { ExitCode } from "./exit-codes.js";

/** `--division N`: an Exact division number (a positive Edm.Int32, e.g. 123456). */
export function parseDivision(raw: string): number {
  const division = /^[1-9][0-9]{0,9}$/.test(raw) ? Number(raw) : Number.NaN;
  if (!(division <= MAX_DIVISION)) {
    throw new ValidationError(
      `--division must be an Exact division number: a whole number from 1 to ${MAX_DIVISION} (e.g. 123456), got "${raw}"`,
    );
  }
  return division;
}

/** `exact-broker connection set-division --id X --division N`. */
export async function setDivision(
  broker: Broker,
  connectionId: string,
  division: number,
  io: { readonly out: (line: string) => void; readonly err: (line: string) => void },
): Promise<number> {
  const result = await broker.division.set(connectionId, division);
  switch (result.kind) {
    case "unchanged":
      io.out(
        `connection "${connectionId}" already gives consumers division ${division} (pinned by an operator)`,
      );
      return ExitCode.Done;
    case "unreachable":
      io.err(
        `refused: Exact user ${result.exactUserName ?? "?"} cannot open division ${division} (Exact answered 403 NoDivisionAccess); ` +
          `connection "${connectionId}" keeps division ${result.previous ?? "-"}. Give the user access to it in Exact, or choose one it can open.`,
      );
      return ExitCode.Refused;
    case "pinned":
      io.out(
        `connection "${connectionId}" now gives consumers division ${division} (was ${result.previous ?? "-"}), pinned by an operator; ` +
          (result.checked
            ? `Exact user ${result.exactUserName ?? "?"} can open it`
            : "not checked yet: the connection has no chain; its first identity check checks it"),
      );
      if (result.resumed) {
        io.out(
          "its stored chain, stopped because the user could not open the old division, is checked again by the next vend or scheduled refresh (no login)",
        );
      }
      io.out("warm token-vend containers may answer the previous division for up to a minute");
      return ExitCode.Done;
  }
}
