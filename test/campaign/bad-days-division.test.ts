import { defineCampaign } from "./campaign.js";
import {
  healChecksDivision,
  healDivisionUnreachable,
  setDivisionDoor,
  setDivisionRefreshesFirst,
} from "./user-state-scenarios.js";

// The fault campaign (campaign.ts) for the pinned division (issue 9): heals whose division check
// runs (`system/Divisions`: the pinned division reached and kept; lost: REAUTH_REQUIRED with its
// event), and the operator's `connection set-division` (with the stored token, and after a refresh).
await defineCampaign("bad-days-division", [
  healChecksDivision,
  healDivisionUnreachable,
  setDivisionDoor,
  setDivisionRefreshesFirst,
]);
