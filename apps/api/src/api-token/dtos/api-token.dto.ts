import { Field, ID, InputType, ObjectType } from '@nestjs/graphql';
import type { ApiToken as ApiTokenRow } from '@caas/db';
import { Role } from '../../common/graphql/enums';

@ObjectType({ description: 'A tenant API token. The token itself is shown once, at creation, and never again.' })
export class ApiToken {
  @Field(() => ID) id!: string;
  @Field(() => String) name!: string;
  @Field(() => String, { description: 'The first characters of the token, to recognise it.' }) prefix!: string;
  @Field(() => Role) role!: Role;
  @Field(() => Date, { nullable: true }) expiresAt!: Date | null;
  @Field(() => Date, { nullable: true }) revokedAt!: Date | null;
  @Field(() => Date, { nullable: true, description: 'Updated at most once a minute.' }) lastUsedAt!: Date | null;
  @Field(() => Date) createdAt!: Date;
}

export function toApiToken(row: ApiTokenRow): ApiToken {
  const { id, name, prefix, role, expiresAt, revokedAt, lastUsedAt, createdAt } = row;
  return { id, name, prefix, role, expiresAt, revokedAt, lastUsedAt, createdAt };
}

@InputType()
export class CreateApiTokenInput {
  @Field(() => String) name!: string;
  @Field(() => Role, { description: "At most the caller's own role." }) role!: Role;
  @Field(() => Date, { nullable: true, description: 'When the token stops working; never, when omitted.' })
  expiresAt?: Date;
}

@ObjectType()
export class CreateApiTokenPayload {
  @Field(() => ApiToken) apiToken!: ApiToken;
  @Field(() => String, { description: 'The bearer token. Shown once: only its hash is stored.' }) token!: string;
}
