/**
 * dynalite in a process of its own (startDynaliteProcess, lib/local/dynalite.ts), so a bench that
 * keeps one core busy with the broker leaves dynalite the other. Listens on 127.0.0.1 (a free
 * port), prints `{"port":N}` on stdout once listening, and stops when its parent goes away.
 *
 * A request may carry the caller's clock in `x-virtual-now` (epoch ms): the answer's `Date`
 * header then reports it, as startDynalite's `now` does in-process, so a broker on a fake clock
 * measures no skew against the table (lib/chain/clock-skew.ts).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import dynalite from "dynalite";

/** dynalite.ts VIRTUAL_NOW_HEADER (not imported: this process loads dynalite and nothing else). */
const VIRTUAL_NOW_HEADER = "x-virtual-now";

const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
server.prependListener("request", (request: IncomingMessage, response: ServerResponse) => {
  const virtualNow = Number(request.headers[VIRTUAL_NOW_HEADER]);
  if (Number.isFinite(virtualNow) && virtualNow > 0) {
    response.setHeader("date", new Date(virtualNow).toUTCString());
  }
});
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
});
// The parent closes stdin when it exits or closes the stack: nothing is left running.
process.stdin.resume();
process.stdin.on("end", () => server.close(() => process.exit(0)));
