import { defineCampaign } from "./campaign.js";
import { connectButton, connectPage } from "./connect-scenarios.js";
import {
  handOverResumed,
  reseedHandsOver,
  reseedNewUser,
  seedHandsOver,
  seedOverStaleGuard,
} from "./handover-scenarios.js";
import { connectCallback, seedDoor, verifyAfterExpiry, verifyByHeal, verifyByVend } from "./scenarios.js";

// The fault campaign (campaign.ts) for the doors that start or verify a chain without a login:
// seed, the connect flow (its page, its button, which the person connecting goes on from, and its
// callback), the identity check of a VERIFYING chain (by a vend, by a heal, and
// by a vend after its access token expired: refreshed first), and the doors of two connections of
// one app: a seed or re-seed with a code of the user another connection holds (the chain is
// handed over to it), that hand-over resumed after the seed that decided it died, a seed over a
// guard its removed connection left behind, a re-seed with another user (the old guard freed).
await defineCampaign("onboarding", [
  seedDoor,
  connectPage,
  connectButton,
  connectCallback,
  verifyByVend,
  verifyByHeal,
  verifyAfterExpiry,
  seedHandsOver,
  reseedHandsOver,
  handOverResumed,
  seedOverStaleGuard,
  reseedNewUser,
]);
