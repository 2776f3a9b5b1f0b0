import { Field, ID, InputType, ObjectType } from '@nestjs/graphql';
import type { RegistryCredential as RegistryCredentialRow } from '@caas/db';

@ObjectType({ description: 'Credentials for pulling private images. The secret is write-only: it is never returned.' })
export class RegistryCredential {
  @Field(() => ID) id!: string;
  @Field(() => String, { description: 'Registry host, with its port when not 443.' }) registry!: string;
  @Field(() => String) username!: string;
  @Field(() => Date) createdAt!: Date;
}

export function toRegistryCredential(row: RegistryCredentialRow): RegistryCredential {
  const { id, registry, username, createdAt } = row;
  return { id, registry, username, createdAt };
}

@InputType()
export class CreateRegistryCredentialInput {
  @Field(() => String) registry!: string;
  @Field(() => String) username!: string;
  @Field(() => String, { description: 'Password or access token; stored encrypted, never returned.' }) secret!: string;
}
