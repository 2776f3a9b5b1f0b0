import { ArgsType, Field, Float, ID, InputType, Int } from '@nestjs/graphql';
import { PageArgs } from '../../common/pagination/connection';
import { RestartPolicy } from './pod.enums';

@InputType({ description: 'A label: Kubernetes-style key (optional DNS prefix and a name) and value.' })
export class LabelInput {
  @Field(() => String) key!: string;
  @Field(() => String) value!: string;
}

@InputType()
export class EnvVarInput {
  @Field(() => String, { description: '[A-Za-z_][A-Za-z0-9_]*' }) name!: string;
  @Field(() => String) value!: string;
  @Field(() => Boolean, {
    nullable: true,
    defaultValue: false,
    description: 'Write-only: stored encrypted, never returned (it reads as "********"), never in events.',
  })
  secret?: boolean | null;
}

@InputType()
export class ContainerInput {
  @Field(() => String, { description: 'DNS label, unique within the pod.' }) name!: string;
  @Field(() => String, {
    description: 'OCI image reference: [registry[:port]/]repository[:tag][@sha256:<64 hex>].',
  })
  image!: string;
  @Field(() => [String], { nullable: true, description: "Replaces the image's entrypoint." }) command?: string[] | null;
  @Field(() => [String], { nullable: true, description: "Replaces the image's cmd." }) args?: string[] | null;
  @Field(() => [EnvVarInput], { nullable: true }) env?: EnvVarInput[] | null;
  @Field(() => String, { nullable: true, description: 'An absolute path.' }) workingDir?: string | null;
  @Field(() => String, { nullable: true, description: 'uid[:gid], or a user name[:group].' }) user?: string | null;
  @Field(() => Float, { nullable: true, description: 'CPU limit in cores (millicore precision), at most vcpus.' })
  cpuLimit?: number | null;
  @Field(() => Int, { nullable: true, description: 'Memory limit in MiB, at most the pod memoryMiB.' })
  memoryLimitMiB?: number | null;
}

@InputType()
export class CreatePodInput {
  @Field(() => String, { description: 'DNS label, unique within the tenant.' }) name!: string;
  @Field(() => [LabelInput], { nullable: true, description: 'At most 64, keys unique.' }) labels?: LabelInput[] | null;
  @Field(() => [ContainerInput], { description: '1 to 16 containers.' }) containers!: ContainerInput[];
  @Field(() => Int, { description: 'Virtual CPUs of the pod VM, 1 to 64.' }) vcpus!: number;
  @Field(() => Int, { description: 'Memory of the pod VM in MiB, 64 to 262144.' }) memoryMiB!: number;
  @Field(() => RestartPolicy, { nullable: true, defaultValue: RestartPolicy.ALWAYS })
  restartPolicy?: RestartPolicy | null;
  @Field(() => [LabelInput], {
    nullable: true,
    description: 'Node labels the pod must be placed on (every one must match), at most 64, keys unique.',
  })
  nodeSelector?: LabelInput[] | null;
}

@InputType({ description: 'Selects the pods that carry every one of these labels.' })
export class LabelSelectorInput {
  @Field(() => [LabelInput]) matchLabels!: LabelInput[];
}

@ArgsType()
export class PodsArgs extends PageArgs {
  @Field(() => LabelSelectorInput, { nullable: true }) labelSelector?: LabelSelectorInput | null;
}

@ArgsType()
export class EventsArgs extends PageArgs {
  @Field(() => ID, { nullable: true, description: "Only this pod's events." }) podId?: string | null;
}
