import { defineCampaign } from "./campaign.js";
import { connectCallback, seedDoor, verifyByHeal, verifyByVend } from "./scenarios.js";

// The fault campaign (campaign.ts) for the doors that start or verify a chain without a login:
// seed, the connect callback, and the identity check of a VERIFYING chain (by a vend, by a heal).
await defineCampaign("onboarding", [seedDoor, connectCallback, verifyByVend, verifyByHeal]);
