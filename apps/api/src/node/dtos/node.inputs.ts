import { Field, InputType, Int } from '@nestjs/graphql';
import { LabelInput } from '../../pod/dtos/pod.inputs';
import { JOIN_TOKEN_TTL_MINUTES, NODE_LABEL_LIMITS, TaintEffect } from '../utils/node-labels.util';

@InputType()
export class TaintInput {
  @Field(() => String, { description: 'Label-key syntax: [dns-subdomain/]name.' }) key!: string;
  @Field(() => String, { nullable: true, defaultValue: '', description: 'Empty, or label-value syntax.' })
  value?: string | null;
  @Field(() => TaintEffect) effect!: TaintEffect;
}

@InputType()
export class CreateNodeJoinTokenInput {
  @Field(() => [LabelInput], {
    nullable: true,
    description: `Labels the joining node gets: at most ${NODE_LABEL_LIMITS.maxLabels}, keys unique.`,
  })
  labels?: LabelInput[] | null;
  @Field(() => [TaintInput], {
    nullable: true,
    description: `Taints the joining node gets: at most ${NODE_LABEL_LIMITS.maxTaints}, (key, effect) unique.`,
  })
  taints?: TaintInput[] | null;
  @Field(() => Int, {
    nullable: true,
    defaultValue: JOIN_TOKEN_TTL_MINUTES.default,
    description: `Minutes the token stays usable: ${JOIN_TOKEN_TTL_MINUTES.min} to ${JOIN_TOKEN_TTL_MINUTES.max} (a week).`,
  })
  expiresInMinutes?: number | null;
}
