import * as z from "zod";

import { CONNECTION_ID_PATTERN } from "./connection-id.js";

export { CONNECTION_ID_PATTERN };

export const connectionIdSchema = z
  .string()
  .regex(
    CONNECTION_ID_PATTERN,
    "must be 1-64 characters of A-Z, a-z, 0-9, '.', '_' or '-', starting with a letter or digit",
  );

/** token-vend's event; `minValiditySeconds` is capped by Exact's refresh window (see README). */
export function vendEventSchema(refreshWindowSeconds: number) {
  return z.strictObject({
    connectionId: connectionIdSchema,
    minValiditySeconds: z.number().int().min(0).max(refreshWindowSeconds).optional(),
  });
}

export type VendEvent = z.infer<ReturnType<typeof vendEventSchema>>;

/** The EventBridge scheduled event; only its shape is checked, its content is not used. */
export const scheduledEventSchema = z.looseObject({
  "detail-type": z.literal("Scheduled Event"),
  source: z.literal("aws.events"),
});

/** fallback-login's event; `operator` is what `exact-broker heal` sends (see HealDoor.heal). */
export const healEventSchema = z.strictObject({
  connectionId: connectionIdSchema,
  operator: z.boolean().optional(),
});

export type HealEvent = z.infer<typeof healEventSchema>;
