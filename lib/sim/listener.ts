import { once } from "node:events";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";

/** A failed re-listen (the port taken meanwhile) is retried this often until it succeeds. */
const RELISTEN_RETRY_MS = 50;

/**
 * Owns the listening socket of the simulator's HTTP server, including the `refuse` fault: a
 * real connection refusal can only be produced by not listening, so the server stops
 * listening for a while and then listens again on the same port.
 */
export class Listener {
  private port = 0;
  private refuseTimer: NodeJS.Timeout | undefined;
  private refuseUntilMs = 0;
  private closed = false;

  constructor(
    private readonly server: Server,
    private readonly host: string,
  ) {}

  /** True while connections are refused; answers then close their connection. */
  get refusing(): boolean {
    return this.refuseTimer !== undefined;
  }

  /** Listens on `port` (0 picks a free one) and returns the port listened on. */
  async listen(port: number): Promise<number> {
    this.server.listen(port, this.host);
    await once(this.server, "listening");
    this.port = (this.server.address() as AddressInfo).port;
    return this.port;
  }

  /**
   * Refuses connections for `durationMs` of real time (the sim clock plays no part in a network
   * fault). Since Node 19 `server.close()` also closes idle keep-alive connections, so a client
   * cannot sneak a request through a pooled socket; busy ones close after their answer. A second
   * refusal while one runs extends it to the later end.
   */
  refuse(durationMs: number): void {
    const untilMs = Date.now() + durationMs;
    if (this.closed || untilMs <= this.refuseUntilMs) {
      return;
    }
    if (this.refuseTimer === undefined) {
      this.server.close();
    } else {
      clearTimeout(this.refuseTimer);
    }
    this.refuseUntilMs = untilMs;
    this.refuseTimer = setTimeout(() => this.relisten(), durationMs);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.refuseTimer);
    this.refuseTimer = undefined;
    const closing = this.server.listening ? once(this.server, "close") : Promise.resolve();
    this.server.close();
    this.server.closeAllConnections();
    await closing;
  }

  private relisten(): void {
    if (this.closed) {
      return;
    }
    const onListening = (): void => {
      this.server.off("error", onError);
      this.refuseTimer = undefined;
    };
    const onError = (): void => {
      this.server.off("listening", onListening);
      this.refuseTimer = setTimeout(() => this.relisten(), RELISTEN_RETRY_MS);
    };
    this.server.once("listening", onListening);
    this.server.once("error", onError);
    this.server.listen(this.port, this.host);
  }
}
