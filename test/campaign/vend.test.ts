import { defineCampaign } from "./campaign.js";
import { vendBreaks, vendProbes, vendRefreshes, vendServes, vendUndecryptable } from "./scenarios.js";
import { vendHeldByOutage, vendProbesForApp, vendUpgradesLegacy } from "./state-scenarios.js";

// The fault campaign (campaign.ts) for the vend door: a vend that refreshes, one that probes, one
// served from the stored token, one that finds the chain dead, one whose refresh token does not
// decrypt, one of an item written before incarnations (upgraded first), and two during an outage
// of the app (one chain of the app holds back while the probe is not due; one probes for all).
await defineCampaign("vend", [
  vendRefreshes,
  vendProbes,
  vendServes,
  vendBreaks,
  vendUndecryptable,
  vendUpgradesLegacy,
  vendHeldByOutage,
  vendProbesForApp,
]);
