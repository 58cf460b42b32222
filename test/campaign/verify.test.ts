import { defineCampaign } from "./campaign.js";
import { verifyByHeal, verifyByVend } from "./scenarios.js";

// The fault campaign (campaign.ts) for the identity check of a VERIFYING chain, by a vend and by a heal.
await defineCampaign("verify", [verifyByVend, verifyByHeal]);
