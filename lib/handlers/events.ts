import * as z from "zod";

import { CONNECTION_ID_PATTERN } from "./connection-id.js";

export { CONNECTION_ID_PATTERN };

export const connectionIdSchema = z
  .string()
  .regex(
    CONNECTION_ID_PATTERN,
    "must be 1-64 characters of A-Z, a-z, 0-9, '.', '_' or '-', starting with a letter or digit",
  );

/**
 * A consumer's signed sts:GetCallerIdentity request (lib/auth/caller-identity.ts). Only its shape
 * is checked here: a shape that is not this (not an object, a header that is not a string, too
 * many or too long) is a client bug and answers ValidationError; what the headers say is checked
 * by the authorizer and answers AccessDenied. The bounds are far above a real request (7 headers,
 * a session token of 1 KB or so, more with session tags and policies; a 43-byte body) and keep a
 * junk event cheap to refuse.
 */
export const callerIdentitySchema = z.strictObject({
  headers: z
    .record(z.string().min(1).max(64), z.string().max(8192))
    .refine((headers) => Object.keys(headers).length <= 16, "at most 16 headers"),
  body: z.string().max(256),
});

/**
 * token-vend's event; `minValiditySeconds` is capped by Exact's refresh window, `callerIdentity`
 * proves the caller's AWS identity (required under VEND_AUTHORIZATION=perConnection; see README),
 * `rejectedGeneration` is the generation whose access token Exact refused the caller (an integer
 * from 1; one above the connection's current generation is refused by the vend door, which alone
 * knows it). The object is strict: a broker older than a field refuses events that carry it.
 */
export function vendEventSchema(refreshWindowSeconds: number) {
  return z.strictObject({
    connectionId: connectionIdSchema,
    minValiditySeconds: z.number().int().min(0).max(refreshWindowSeconds).optional(),
    callerIdentity: callerIdentitySchema.optional(),
    rejectedGeneration: z.number().int().min(1).optional(),
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
