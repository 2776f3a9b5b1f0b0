import { Field, Float, ID, Int, ObjectType, registerEnumType } from '@nestjs/graphql';
import type { Node as NodeRow, NodeJoinToken as NodeJoinTokenRow } from '@caas/db';
import { NodeStatus } from '@caas/db';
import { Label } from '../../pod/dtos/pod.dto';
import { Accelerator } from '../../pod/dtos/pod.enums';
import { readLabels, readTaints, TaintEffect } from '../utils/node-labels.util';

registerEnumType(NodeStatus, {
  name: 'NodeStatus',
  description: 'REGISTERED: joined, no heartbeat yet; READY: lease current; NOT_READY: lease expired, pods re-placed.',
});
registerEnumType(TaintEffect, {
  name: 'TaintEffect',
  description: 'NO_SCHEDULE: no new pod without a matching toleration; NO_EXECUTE: running ones are evicted too.',
});

export { NodeStatus, TaintEffect };

@ObjectType({ description: 'Keeps pods without a matching toleration off a node.' })
export class Taint {
  @Field(() => String) key!: string;
  @Field(() => String, { description: 'May be empty.' }) value!: string;
  @Field(() => TaintEffect) effect!: TaintEffect;
}

@ObjectType({ description: 'What a node offers to pods.' })
export class NodeCapacity {
  @Field(() => Int) vcpus!: number;
  @Field(() => Int) memoryMiB!: number;
  @Field(() => Int) pods!: number;
  @Field(() => Float, { description: 'Disk for images and writable layers, in bytes.' }) diskBytes!: number;
}

@ObjectType({ description: 'What the pods placed on a node hold (VM overhead included).' })
export class NodeAllocation {
  @Field(() => Int) vcpus!: number;
  @Field(() => Int) memoryMiB!: number;
  @Field(() => Int) pods!: number;
}

@ObjectType({ description: 'A bare-metal host running pods in microVMs. Operator only.' })
export class Node {
  @Field(() => ID) id!: string;
  @Field(() => String) name!: string;
  @Field(() => NodeStatus) status!: NodeStatus;
  @Field(() => Boolean, { description: 'No new pods are placed on the node.' }) cordoned!: boolean;
  @Field(() => Boolean, { description: 'Its pods are being moved away (a draining node is also cordoned).' })
  draining!: boolean;
  @Field(() => Int, { description: 'Bumped each time the node is declared lost.' }) epoch!: number;
  @Field(() => [Label], { description: 'Ordered by key.' }) labels!: Label[];
  @Field(() => [Taint]) taints!: Taint[];
  @Field(() => NodeCapacity) capacity!: NodeCapacity;
  @Field(() => NodeAllocation) allocated!: NodeAllocation;
  @Field(() => Boolean) diskPressure!: boolean;
  @Field(() => Accelerator, { nullable: true }) accelerator!: Accelerator | null;
  @Field(() => Date, { nullable: true }) lastHeartbeatAt!: Date | null;
  @Field(() => Date, { nullable: true }) leaseExpiresAt!: Date | null;
  @Field(() => Date) createdAt!: Date;
}

@ObjectType({ description: 'A one-time token a host presents to join as a node. The token itself is shown once.' })
export class NodeJoinToken {
  @Field(() => ID) id!: string;
  @Field(() => String, { description: 'The first characters of the token, to recognise it.' }) prefix!: string;
  @Field(() => Date) expiresAt!: Date;
  @Field(() => [Label], { description: 'Given to the node that joins with it; ordered by key.' }) labels!: Label[];
  @Field(() => [Taint], { description: 'Given to the node that joins with it.' }) taints!: Taint[];
  @Field(() => Date, { nullable: true, description: 'When a node joined with it (it works once).' })
  usedAt!: Date | null;
  @Field(() => Date) createdAt!: Date;
}

@ObjectType()
export class CreateNodeJoinTokenPayload {
  @Field(() => String, { description: 'The join token (caasjoin_…). Shown once: only its hash is stored.' })
  token!: string;
  @Field(() => NodeJoinToken) joinToken!: NodeJoinToken;
}

export function toNode(row: NodeRow): Node {
  return {
    id: row.id,
    name: row.name,
    status: row.status,
    cordoned: row.cordoned,
    draining: row.draining,
    epoch: row.epoch,
    labels: readLabels(row.labels),
    taints: readTaints(row.taints),
    capacity: {
      vcpus: row.capacityVcpus,
      memoryMiB: row.capacityMemoryMiB,
      pods: row.capacityPods,
      diskBytes: Number(row.capacityDiskBytes),
    },
    allocated: { vcpus: row.allocatedVcpus, memoryMiB: row.allocatedMemoryMiB, pods: row.allocatedPods },
    diskPressure: row.diskPressure,
    accelerator: row.accelerator,
    lastHeartbeatAt: row.lastHeartbeatAt,
    leaseExpiresAt: row.leaseExpiresAt,
    createdAt: row.createdAt,
  };
}

export function toNodeJoinToken(row: NodeJoinTokenRow): NodeJoinToken {
  return {
    id: row.id,
    prefix: row.prefix,
    expiresAt: row.expiresAt,
    labels: readLabels(row.labels),
    taints: readTaints(row.taints),
    usedAt: row.usedAt,
    createdAt: row.createdAt,
  };
}
