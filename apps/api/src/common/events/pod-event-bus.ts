import type { OnApplicationShutdown } from '@nestjs/common';
import { Inject, Injectable } from '@nestjs/common';
import { Redis } from 'ioredis';
import { REDIS } from '../infra/tokens';

/** What subscribers of `podEvents(podId)` receive: one row of the `events` table, as published. */
export interface PodEventMessage {
  id: string;
  tenantId: string;
  podId: string;
  type: 'NORMAL' | 'WARNING';
  reason: string;
  /** Never carries secret values (they are redacted before an event is written). */
  message: string;
  createdAt: string;
}

/** Redis pub/sub channel of one pod's events. Any API replica publishes; any replica's subscribers receive. */
export const podEventChannel = (podId: string) => `caas:pod-events:${podId}`;

/**
 * Pod events travel through Redis pub/sub, never through process memory, so a subscriber connected to
 * one API replica sees events written by another. Publish after the transaction that wrote the event
 * row commits. One subscriber connection per process fans messages out to local subscriptions.
 */
@Injectable()
export class PodEventBus implements OnApplicationShutdown {
  private subscriber: Redis | undefined;
  private readonly listeners = new Map<string, Set<(message: PodEventMessage) => void>>();

  constructor(@Inject(REDIS) private readonly redis: Redis) {}

  async publish(event: PodEventMessage): Promise<void> {
    await this.redis.publish(podEventChannel(event.podId), JSON.stringify(event));
  }

  /** Calls `listener` for each event of the pod until the returned function is called. */
  async subscribe(podId: string, listener: (message: PodEventMessage) => void): Promise<() => Promise<void>> {
    const channel = podEventChannel(podId);
    const subscriber = this.connection();
    let set = this.listeners.get(channel);
    if (set === undefined) {
      set = new Set();
      this.listeners.set(channel, set);
      await subscriber.subscribe(channel);
    }
    set.add(listener);
    return async () => {
      const current = this.listeners.get(channel);
      if (current === undefined || !current.delete(listener) || current.size > 0) return;
      this.listeners.delete(channel);
      await subscriber.unsubscribe(channel);
    };
  }

  async onApplicationShutdown(): Promise<void> {
    this.listeners.clear();
    await this.subscriber?.quit().catch(() => undefined);
  }

  private connection(): Redis {
    if (this.subscriber === undefined) {
      this.subscriber = this.redis.duplicate();
      this.subscriber.on('message', (channel: string, payload: string) => {
        const set = this.listeners.get(channel);
        if (set === undefined) return;
        const message = JSON.parse(payload) as PodEventMessage;
        for (const listener of set) listener(message);
      });
    }
    return this.subscriber;
  }
}
