import { Field, ObjectType, registerEnumType } from '@nestjs/graphql';
import { Role } from '../../common/graphql/enums';

export enum PrincipalKind {
  OPERATOR = 'OPERATOR',
  TENANT = 'TENANT',
}
registerEnumType(PrincipalKind, { name: 'PrincipalKind' });

@ObjectType({ description: 'Who the caller is.' })
export class Viewer {
  @Field(() => PrincipalKind) kind!: PrincipalKind;
  @Field(() => Role, { nullable: true, description: "The token's role; null for the operator." }) role!: Role | null;
  /** Resolved by a field resolver; carried here so it can find the tenant. */
  tenantId!: string | null;
}
