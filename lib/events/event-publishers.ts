import { EventBridgeClient, PutEventsCommand } from "@aws-sdk/client-eventbridge";
import type { EngineLog } from "../chain/engine-deps.js";
import { type BrokerEvent, EVENT_SOURCE, type EventPublisher } from "./broker-events.js";

/**
 * Sends events to the broker's bus. A failed PutEvents is logged, not thrown: an event is a
 * signal for people, and must never fail the token work that raised it. The EventBridge client
 * is built at the first event, which most vends never raise, not when the function starts
 * (issue 12).
 */
export class EventBridgePublisher implements EventPublisher {
  #client: EventBridgeClient | undefined;
  readonly #busName: string;
  readonly #log: EngineLog;

  constructor(options: {
    readonly busName: string;
    readonly log: EngineLog;
    readonly client?: EventBridgeClient;
  }) {
    this.#busName = options.busName;
    this.#log = options.log;
    this.#client = options.client;
  }

  async publish(event: BrokerEvent): Promise<void> {
    try {
      this.#client ??= new EventBridgeClient({});
      const out = await this.#client.send(
        new PutEventsCommand({
          Entries: [
            {
              EventBusName: this.#busName,
              Source: EVENT_SOURCE,
              DetailType: event.type,
              Detail: JSON.stringify(event.detail),
            },
          ],
        }),
      );
      if ((out.FailedEntryCount ?? 0) > 0) {
        this.#log.error("event not accepted by EventBridge", {
          eventType: event.type,
          ...event.detail,
          errorCode: out.Entries?.[0]?.ErrorCode,
        });
      }
    } catch (error) {
      this.#log.error("event could not be sent", {
        eventType: event.type,
        ...event.detail,
        error: error as Error,
      });
    }
  }
}

/** Locally (no EVENT_BUS_NAME) events are log lines. */
export class LogPublisher implements EventPublisher {
  readonly #log: EngineLog;

  constructor(log: EngineLog) {
    this.#log = log;
  }

  async publish(event: BrokerEvent): Promise<void> {
    this.#log.warn(`event ${event.type}`, { eventType: event.type, source: EVENT_SOURCE, ...event.detail });
  }
}

/** Keeps what it is given, for tests and the local demo. */
export class MemoryPublisher implements EventPublisher {
  readonly events: BrokerEvent[] = [];

  async publish(event: BrokerEvent): Promise<void> {
    this.events.push(event);
  }
}
