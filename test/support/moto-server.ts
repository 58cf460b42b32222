import { type ChildProcess, spawn } from "node:child_process";
import { createServer } from "node:net";
import { PythonTool, requirePythonTool } from "./python-tools.js";

/** A running moto_server (Python moto): real AWS APIs over HTTP on 127.0.0.1, for tests. */
export interface MotoServer {
  /** `http://127.0.0.1:PORT`, for an AWS SDK client's `endpoint`. */
  readonly endpoint: string;
  /** Stops the server by its own PID and resolves once it has exited. */
  close(): Promise<void>;
}

const EXECUTABLE = PythonTool.MotoServer;

export interface MotoServerOptions {
  /**
   * Extra environment of this server only, e.g. `{ INITIAL_NO_AUTH_ACTION_COUNT: "4" }`: moto
   * then checks every request's SigV4 signature and IAM policy after the first 4 actions (its
   * "IAM-like access control"). Give such a server its own instance: other tests send unsigned
   * or unauthorized requests.
   */
  readonly env?: Readonly<Record<string, string>>;
}
/** moto_server starts in 2–3 s here; a loaded CI runner gets a generous margin. */
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 5_000;
const POLL_INTERVAL_MS = 100;
/** How much of the server's output a start failure shows. */
const TAIL_LINES = 20;
/** Another process can take the free port between our probe and moto's bind; then we try another. */
const START_ATTEMPTS = 3;
const PORT_TAKEN = "Address already in use";

/**
 * Starts `moto_server -H 127.0.0.1 -p PORT` on a free port and resolves once it answers HTTP
 * (about 2–3 s: start one per test file, in `beforeAll`). Its output is kept off the test report;
 * a failed start reports the last lines of it.
 *
 * Looks for the executable on PATH, then in `$PYENV_ROOT/shims` and `$HOME/.pyenv/shims`
 * (python-tools.ts). Call it inside a `describeWithMoto` block (tool-gate.ts), which skips or
 * fails the block when moto_server is missing.
 *
 * @throws PythonToolMissing naming the directories searched and the install command when
 *   moto_server is not found; Error with the server's last output lines when it exits or stays
 *   silent for 30 s.
 */
export async function startMotoServer(options: MotoServerOptions = {}): Promise<MotoServer> {
  const executable = requirePythonTool(EXECUTABLE);
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await startOn(executable, await freePort(), options.env ?? {});
    } catch (error) {
      if (attempt === START_ATTEMPTS || !(error as Error).message.includes(PORT_TAKEN)) throw error;
    }
  }
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("Could not find a free TCP port");
  return address.port;
}

async function startOn(executable: string, port: number, env: Record<string, string>): Promise<MotoServer> {
  const child = spawn(executable, ["-H", "127.0.0.1", "-p", String(port)], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...env },
  });
  const output = new OutputTail(TAIL_LINES);
  child.stdout?.on("data", (chunk: Buffer) => output.push(chunk));
  child.stderr?.on("data", (chunk: Buffer) => output.push(chunk));
  const exited = new Promise<void>((resolve) => {
    child.once("exit", () => resolve());
    // A spawn error (ENOENT, EACCES) emits "error" instead of "exit".
    child.on("error", (error) => {
      output.push(Buffer.from(`${error.message}\n`));
      resolve();
    });
  });
  // A test runner that dies mid-file must not leave the server behind.
  const killOnExit = (): void => {
    child.kill("SIGKILL");
  };
  process.once("exit", killOnExit);

  const stop = async (): Promise<void> => {
    process.removeListener("exit", killOnExit);
    await stopChild(child, exited);
  };

  const endpoint = `http://127.0.0.1:${port}`;
  try {
    await waitUntilAnswering(endpoint, exited);
  } catch (error) {
    await stop();
    throw new Error(`${EXECUTABLE} did not start on port ${port}: ${(error as Error).message}\n${output}`, {
      cause: error,
    });
  }
  return { endpoint, close: stop };
}

async function waitUntilAnswering(endpoint: string, exited: Promise<void>): Promise<void> {
  let hasExited = false;
  void exited.then(() => {
    hasExited = true;
  });
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (hasExited) throw new Error("it exited");
    try {
      // moto's own management API; any HTTP answer means the server is accepting requests.
      await fetch(`${endpoint}/moto-api/`, { signal: AbortSignal.timeout(1_000) });
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
    }
  }
  throw new Error(`no answer within ${START_TIMEOUT_MS} ms`);
}

async function stopChild(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  child.kill("SIGTERM");
  const timedOut = await Promise.race([
    exited.then(() => false),
    new Promise<boolean>((resolve) => setTimeout(() => resolve(true), STOP_TIMEOUT_MS).unref()),
  ]);
  if (timedOut) {
    child.kill("SIGKILL");
    await exited;
  }
}

/** The last lines a child wrote, for an error message; older lines are dropped as they come. */
class OutputTail {
  #lines: string[] = [];
  #partial = "";

  constructor(private readonly maxLines: number) {}

  push(chunk: Buffer): void {
    const parts = (this.#partial + chunk.toString("utf8")).split("\n");
    this.#partial = parts.pop() ?? "";
    this.#lines.push(...parts);
    if (this.#lines.length > this.maxLines) this.#lines.splice(0, this.#lines.length - this.maxLines);
  }

  toString(): string {
    const lines = this.#partial === "" ? this.#lines : [...this.#lines, this.#partial];
    return lines.length === 0
      ? "(it printed nothing)"
      : `last lines of its output:\n${lines.map((line) => `  ${line}`).join("\n")}`;
  }
}
