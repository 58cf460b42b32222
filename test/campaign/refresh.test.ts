import { defineCampaign } from "./campaign.js";
import { refreshBroken, refreshCools, refreshExpiring, refreshHot, refreshKeepalive } from "./scenarios.js";
import { blockedRecheck } from "./state-scenarios.js";

// The fault campaign (campaign.ts) for the scheduled refresh: a hot chain in its window, an idle
// one due for its keep-alive (25 days) or near Exact's 30 (27 days), one to cool, a broken one,
// and a BLOCKED user's re-check (its chain refreshed first, then its identity checked).
await defineCampaign("refresh", [
  refreshHot,
  refreshKeepalive,
  refreshExpiring,
  refreshCools,
  refreshBroken,
  blockedRecheck,
]);
