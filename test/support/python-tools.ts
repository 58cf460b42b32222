import { accessSync, constants } from "node:fs";
import { homedir } from "node:os";
import { delimiter, join } from "node:path";

/**
 * The Python tools some tests run (installed with pip, usually under pyenv): `moto_server` serves
 * AWS APIs without an npm engine (KMS, Secrets Manager, EventBridge, STS, SQS, Lambda's control
 * API) over real HTTP; `cfn-lint` checks the synthesized CloudFormation template.
 */
export const PythonTool = { MotoServer: "moto_server", CfnLint: "cfn-lint" } as const;
export type PythonTool = (typeof PythonTool)[keyof typeof PythonTool];

/** What each tool is and the pip command that installs it (issue 10 names moto's exactly). */
const ABOUT: Record<PythonTool, { readonly what: string; readonly install: string }> = {
  [PythonTool.MotoServer]: {
    what: "Python moto 5 with its server extra",
    install: 'pip install "moto[server]"',
  },
  [PythonTool.CfnLint]: { what: "the CloudFormation linter", install: "pip install cfn-lint" },
};

/** Where {@link findPythonTool} looks, in order, as messages name it. */
export const SEARCH_PLACES = "PATH, $PYENV_ROOT/shims, ~/.pyenv/shims";

/** `pip install … && pyenv rehash`: the rehash makes pyenv create the new executable's shim. */
export function installCommand(tool: PythonTool): string {
  return `${ABOUT[tool].install} && pyenv rehash`;
}

/** A tool a test needs is not installed where {@link findPythonTool} looks. */
export class PythonToolMissing extends Error {
  override readonly name = "PythonToolMissing";

  constructor(
    readonly tool: PythonTool,
    searched: readonly string[],
  ) {
    super(
      `${tool} (${ABOUT[tool].what}) was not found on PATH, in $PYENV_ROOT/shims or in ~/.pyenv/shims ` +
        `(searched: ${searched.join(", ")}). Install it under pyenv with \`${installCommand(tool)}\`, ` +
        `or put the directory holding ${tool} on PATH.`,
    );
  }
}

/**
 * The directories searched: PATH, then `$PYENV_ROOT/shims` and `$HOME/.pyenv/shims`, because a
 * non-interactive shell (CI, `env -i`) does not run pyenv's init and so lacks its shims on PATH.
 */
export function searchedDirectories(env: NodeJS.ProcessEnv = process.env): string[] {
  const fromPath = (env.PATH ?? "").split(delimiter).filter((dir) => dir !== "");
  const shims = [
    ...(env.PYENV_ROOT ? [join(env.PYENV_ROOT, "shims")] : []),
    join(env.HOME ?? homedir(), ".pyenv", "shims"),
  ];
  return [...new Set([...fromPath, ...shims])];
}

/**
 * The absolute path of the first executable `tool` in {@link searchedDirectories}, or `undefined`.
 * Synchronous on purpose: a test file decides at collection time whether to skip.
 */
export function findPythonTool(tool: PythonTool, env: NodeJS.ProcessEnv = process.env): string | undefined {
  for (const directory of searchedDirectories(env)) {
    const candidate = join(directory, tool);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not in this directory (or not executable); try the next.
    }
  }
  return undefined;
}

/**
 * Like {@link findPythonTool}, for a test that cannot go on without the tool.
 * @throws PythonToolMissing naming the directories searched and the install command.
 */
export function requirePythonTool(tool: PythonTool, env: NodeJS.ProcessEnv = process.env): string {
  const found = findPythonTool(tool, env);
  if (found === undefined) throw new PythonToolMissing(tool, searchedDirectories(env));
  return found;
}
