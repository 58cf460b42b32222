import { startMotoIdentities } from "../auth/moto-identities.js";
import { findPythonTool, PythonTool } from "../support/python-tools.js";
import { isCi } from "../support/tool-gate.js";
import { grantedCallerDoor, revokedGrantDoor, ungrantedCallerDoor } from "./authorization-scenarios.js";
import { defineCampaign, skipCampaign } from "./campaign.js";

// The fault campaign (campaign.ts) for token-vend's authorization under perConnection (issue 10):
// a granted consumer's vend in a new container, one in a warm container whose cached grant was
// revoked over a minute ago, and one never granted, each through STS in a moto_server of its own
// (signatures enforced). Its calls are enumerated from clean runs against moto, so without
// moto_server the file is skipped as tool-gate.ts skips (CI=true: it fails, moto is required).
if (isCi() || findPythonTool(PythonTool.MotoServer) !== undefined) {
  const ids = await startMotoIdentities();
  await defineCampaign(
    "authorization",
    [grantedCallerDoor(ids), revokedGrantDoor(ids), ungrantedCallerDoor(ids)],
    () => ids.moto.close(),
  );
} else {
  skipCampaign("authorization", PythonTool.MotoServer);
}
