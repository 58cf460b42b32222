import { defineCampaign } from "./campaign.js";
import {
  dispatchDoor,
  workerHot,
  workerHotRetried,
  workerKeepalive,
  workerVerifies,
} from "./queue-scenarios.js";

// The fault campaign (campaign.ts) for the scheduled refresh at scale: the schedule's dispatch
// (queue first, claim second; `queue:send` faulted like every call) and the worker on a hot
// chain's message (also one Exact first answers "too early": the in-window retry), a
// keep-alive's and an identity check's. After the door the queue runs on:
// ticks a minute apart, every message delivered twice when due.
await defineCampaign("refresh-queue", [
  dispatchDoor,
  workerHot,
  workerHotRetried,
  workerKeepalive,
  workerVerifies,
]);
