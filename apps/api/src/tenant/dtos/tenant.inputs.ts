import { Field, InputType, Int, ObjectType } from '@nestjs/graphql';
import { EgressDefault } from '../../common/graphql/enums';
import { Tenant } from './tenant.dto';

@InputType()
export class QuotaInput {
  @Field(() => Int, { nullable: true }) maxPods?: number;
  @Field(() => Int, { nullable: true }) maxVcpus?: number;
  @Field(() => Int, { nullable: true }) maxMemoryMiB?: number;
}

@InputType()
export class CreateTenantInput {
  @Field(() => String, { description: 'Lower-case DNS label, unique across the platform.' }) slug!: string;
  @Field(() => String) displayName!: string;
  @Field(() => String, { description: "The first owner's e-mail address." }) ownerEmail!: string;
  @Field(() => String, {
    nullable: true,
    description: 'A private IPv4 subnet (RFC 1918, /16 to /28); allocated from the platform pool when omitted.',
  })
  subnet?: string;
  @Field(() => EgressDefault, { nullable: true }) egressDefault?: EgressDefault;
  @Field(() => QuotaInput, { nullable: true }) quota?: QuotaInput;
}

@ObjectType()
export class CreateTenantPayload {
  @Field(() => Tenant) tenant!: Tenant;
  @Field(() => String, { description: 'The first OWNER token. Shown once: it is stored only as a hash.' })
  ownerToken!: string;
}
