import type { OnApplicationShutdown } from '@nestjs/common';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { Redis } from 'ioredis';
import type { PodEventMessage } from '@caas/log-stream-contract';
import { parsePodEventMessage, podEventChannel } from '@caas/log-stream-contract';
import { REDIS } from '../infra/tokens';

// The channel name and message shape are a contract with the scheduler, which publishes events too.
export type { PodEventMessage } from '@caas/log-stream-contract';
export { podEventChannel } from '@caas/log-stream-contract';

type Listener = (message: PodEventMessage) => void;

interface ChannelState {
  listeners: Set<Listener>;
  /** Settles when Redis has confirmed the SUBSCRIBE; every subscriber of the channel waits for it. */
  ready: Promise<void>;
}

/**
 * Pod events travel through Redis pub/sub, never through process memory, so a subscriber connected to
 * one API replica sees events written by another. Publish after the transaction that wrote the event
 * row commits. One subscriber connection per process fans messages out to local subscriptions; a
 * channel is subscribed in Redis exactly while this process has a listener for it.
 */
@Injectable()
export class PodEventBus implements OnApplicationShutdown {
  private readonly logger = new Logger(PodEventBus.name);
  private subscriber: Redis | undefined;
  private readonly channels = new Map<string, ChannelState>();

  constructor(@Inject(REDIS) private readonly redis: Redis) {}

  async publish(event: PodEventMessage): Promise<void> {
    await this.redis.publish(podEventChannel(event.podId), JSON.stringify(event));
  }

  /**
   * Calls `listener` for each event of the pod until the returned function is called. Resolves once
   * Redis has confirmed the subscription: an event published after that is delivered.
   */
  async subscribe(podId: string, listener: Listener): Promise<() => Promise<void>> {
    const channel = podEventChannel(podId);
    const subscriber = this.connection();
    let state = this.channels.get(channel);
    if (state === undefined) {
      const created: ChannelState = {
        listeners: new Set(),
        ready: subscriber.subscribe(channel).then(() => undefined),
      };
      this.channels.set(channel, created);
      state = created;
    }
    state.listeners.add(listener);
    try {
      await state.ready;
    } catch (error) {
      await this.remove(channel, state, listener);
      throw error;
    }
    let done = false;
    return async () => {
      if (done) return;
      done = true;
      await this.remove(channel, state, listener);
    };
  }

  async onApplicationShutdown(): Promise<void> {
    this.channels.clear();
    await this.subscriber?.quit().catch(() => undefined);
  }

  private async remove(channel: string, state: ChannelState, listener: Listener): Promise<void> {
    state.listeners.delete(listener);
    // Commands on one connection run in order, so a SUBSCRIBE sent by a later subscriber lands after this.
    if (state.listeners.size > 0 || this.channels.get(channel) !== state) return;
    this.channels.delete(channel);
    await this.subscriber?.unsubscribe(channel).catch((error: unknown) => {
      this.logger.warn(`UNSUBSCRIBE ${channel} failed: ${String(error)}`);
    });
  }

  private connection(): Redis {
    if (this.subscriber === undefined) {
      const subscriber = this.redis.duplicate({ connectionName: 'caas:api:pod-events' });
      subscriber.on('error', (error: Error) => this.logger.warn(`pod event subscriber: ${error.message}`));
      subscriber.on('message', (channel: string, payload: string) => this.dispatch(channel, payload));
      this.subscriber = subscriber;
    }
    return this.subscriber;
  }

  private dispatch(channel: string, payload: string): void {
    const state = this.channels.get(channel);
    if (state === undefined) return;
    const message = parsePodEventMessage(payload);
    // Whatever is published on the channel must be this pod's event; anything else is dropped.
    if (message === null || podEventChannel(message.podId) !== channel) {
      this.logger.warn(`dropped a malformed message on ${channel}`);
      return;
    }
    for (const listener of state.listeners) {
      try {
        listener(message);
      } catch (error) {
        this.logger.error(`pod event listener failed: ${String(error)}`);
      }
    }
  }
}
