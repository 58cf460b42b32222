import { defineCampaign } from "./campaign.js";
import { connectCallback, seedDoor } from "./scenarios.js";

// The fault campaign (campaign.ts) for the doors that start a chain from a code: seed and the connect callback.
await defineCampaign("onboarding", [seedDoor, connectCallback]);
