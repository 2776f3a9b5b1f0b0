import { Field, ID, ObjectType } from '@nestjs/graphql';
import type { Event as EventRow } from '@caas/db';
import { EventType } from './pod.enums';

@ObjectType({ description: 'Something that happened to one of the tenant pods. Never carries secret values.' })
export class Event {
  @Field(() => ID) id!: string;
  @Field(() => EventType) type!: EventType;
  @Field(() => String, { description: 'Machine-readable, CamelCase: Created, Scheduled, Started, …' }) reason!: string;
  @Field(() => String) message!: string;
  @Field(() => ID, { nullable: true, description: 'The pod; null once the pod is deleted.' }) podId!: string | null;
  @Field(() => Date) createdAt!: Date;
}

export function toEvent(row: EventRow): Event {
  return {
    id: row.id.toString(),
    type: row.type,
    reason: row.reason,
    message: row.message,
    podId: row.podId,
    createdAt: row.createdAt,
  };
}
