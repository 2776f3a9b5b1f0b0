import { Field, Float, ID, Int, ObjectType } from '@nestjs/graphql';
import type { Container as ContainerRow, Pod as PodRow } from '@caas/db';
import { z } from 'zod';
import { Accelerator, ContainerPhase, DesiredState, PodPhase, RestartPolicy } from './pod.enums';

/** What every secret env value reads as. The value itself is write-only: sealed at rest, never returned. */
export const SECRET_PLACEHOLDER = '********';

@ObjectType()
export class Label {
  @Field(() => String) key!: string;
  @Field(() => String) value!: string;
}

@ObjectType({ description: `A container environment variable. A secret one reads as "${SECRET_PLACEHOLDER}".` })
export class EnvVar {
  @Field(() => String) name!: string;
  @Field(() => String, { description: `The value; "${SECRET_PLACEHOLDER}" when secret.` }) value!: string;
  @Field(() => Boolean) secret!: boolean;
}

@ObjectType({ description: 'The digest an image reference resolved to at its first pull.' })
export class ImageDigest {
  @Field(() => String) image!: string;
  @Field(() => String) digest!: string;
}

@ObjectType()
export class Container {
  @Field(() => String) name!: string;
  @Field(() => String) image!: string;
  @Field(() => [String]) command!: string[];
  @Field(() => [String]) args!: string[];
  @Field(() => [EnvVar]) env!: EnvVar[];
  @Field(() => String, { nullable: true }) workingDir!: string | null;
  @Field(() => String, { nullable: true }) user!: string | null;
  @Field(() => Float, { nullable: true, description: 'CPU limit inside the VM, in cores.' }) cpuLimit!: number | null;
  @Field(() => Int, { nullable: true }) memoryLimitMiB!: number | null;
  @Field(() => ContainerPhase) phase!: ContainerPhase;
  @Field(() => Int, { nullable: true }) exitCode!: number | null;
  @Field(() => String, { nullable: true }) signal!: string | null;
  @Field(() => Int) restartCount!: number;
  @Field(() => String, { nullable: true }) reason!: string | null;
  @Field(() => Date, { nullable: true }) startedAt!: Date | null;
  @Field(() => Date, { nullable: true }) finishedAt!: Date | null;
}

@ObjectType({ description: 'A pod: one or more containers sharing one microVM and one IP address.' })
export class Pod {
  @Field(() => ID) id!: string;
  @Field(() => String) name!: string;
  @Field(() => [Label]) labels!: Label[];
  @Field(() => PodPhase) phase!: PodPhase;
  @Field(() => DesiredState) desiredState!: DesiredState;
  @Field(() => String, { nullable: true, description: 'Why the pod is in its phase (CamelCase), if known.' })
  reason!: string | null;
  @Field(() => String, { nullable: true }) message!: string | null;
  @Field(() => Int) vcpus!: number;
  @Field(() => Int) memoryMiB!: number;
  @Field(() => RestartPolicy) restartPolicy!: RestartPolicy;
  @Field(() => String, { nullable: true, description: "The pod's address in the tenant subnet." }) ip!: string | null;
  @Field(() => String, { nullable: true, description: 'The name of the node the pod is placed on.' })
  nodeName!: string | null;
  @Field(() => Accelerator, { nullable: true }) accelerator!: Accelerator | null;
  @Field(() => [ImageDigest]) imageDigests!: ImageDigest[];
  @Field(() => Int, { description: 'Bumped on every change of desired state or spec.' }) generation!: number;
  @Field(() => Int, { description: 'The generation the node last converged on.' }) observedGeneration!: number;
  @Field(() => Date) createdAt!: Date;
  @Field(() => Date, { nullable: true }) scheduledAt!: Date | null;
  @Field(() => Date, { nullable: true }) startedAt!: Date | null;
  @Field(() => Date, { nullable: true }) finishedAt!: Date | null;

  /** Not a field: the owner, which the containers loader keys on. */
  tenantId!: string;
  /** Not a field: containers already read (a deleted pod's, which the loader can no longer find). */
  containerRows?: ContainerRow[];
}

// JSON columns are guarded by zod where they are read back (ADR-001).
const labelsSchema = z.record(z.string());
const imageDigestsSchema = z.record(z.string());
const envSchema = z.array(
  z.union([
    z.object({ name: z.string(), secret: z.literal(true), ciphertext: z.string() }),
    z.object({ name: z.string(), value: z.string() }),
  ]),
);

/** A stored env entry: a plain value, or a sealed one. */
export type StoredEnvVar = { name: string; value: string } | { name: string; secret: true; ciphertext: string };

export type PodRowWithNode = PodRow & { node: { name: string } | null };

/** The only node field a tenant may see is its name. */
export const NODE_NAME_ONLY = { node: { select: { name: true } } } as const;

export function toLabels(json: unknown): Label[] {
  return Object.entries(labelsSchema.parse(json))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, value]) => ({ key, value }));
}

export function toPod(row: PodRowWithNode, containerRows?: ContainerRow[]): Pod {
  return {
    id: row.id,
    tenantId: row.tenantId,
    name: row.name,
    labels: toLabels(row.labels),
    phase: row.phase,
    desiredState: row.desiredState,
    reason: row.reason,
    message: row.message,
    vcpus: row.vcpus,
    memoryMiB: row.memoryMiB,
    restartPolicy: row.restartPolicy,
    ip: row.ip,
    nodeName: row.node?.name ?? null,
    accelerator: row.accelerator,
    imageDigests: Object.entries(imageDigestsSchema.parse(row.imageDigests)).map(([image, digest]) => ({
      image,
      digest,
    })),
    generation: row.generation,
    observedGeneration: row.observedGeneration,
    createdAt: row.createdAt,
    scheduledAt: row.scheduledAt,
    startedAt: row.startedAt,
    finishedAt: row.finishedAt,
    ...(containerRows && { containerRows }),
  };
}

export function toContainer(row: ContainerRow): Container {
  return {
    name: row.name,
    image: row.image,
    command: row.command,
    args: row.args,
    env: envSchema
      .parse(row.env)
      .map((entry) =>
        'secret' in entry
          ? { name: entry.name, value: SECRET_PLACEHOLDER, secret: true }
          : { name: entry.name, value: entry.value, secret: false },
      ),
    workingDir: row.workingDir,
    user: row.user,
    cpuLimit: row.cpuLimitMillis === null ? null : row.cpuLimitMillis / 1000,
    memoryLimitMiB: row.memoryLimitMiB,
    phase: row.phase,
    exitCode: row.exitCode,
    signal: row.signal,
    restartCount: row.restartCount,
    reason: row.reason,
    startedAt: row.startedAt,
    finishedAt: row.finishedAt,
  };
}
