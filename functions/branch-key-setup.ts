import { createBranchKeySetupHandler } from "../lib/handlers/branch-key-setup-handler.js";

/**
 * onEvent of the branch key custom resource (CDK Provider framework): creates the stack's branch
 * key at deploy time, once. See lib/handlers/branch-key-setup-handler.ts.
 */
export const handler = createBranchKeySetupHandler();
