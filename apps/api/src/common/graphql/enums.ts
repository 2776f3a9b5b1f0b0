import { registerEnumType } from '@nestjs/graphql';
import { EgressDefault, Role, TenantStatus } from '@caas/db';

registerEnumType(Role, { name: 'Role', description: 'VIEWER < MEMBER < ADMIN < OWNER' });
registerEnumType(TenantStatus, { name: 'TenantStatus' });
registerEnumType(EgressDefault, {
  name: 'EgressDefault',
  description: "What the tenant's pods may reach beyond the tenant network when no policy says otherwise.",
});

export { EgressDefault, Role, TenantStatus };
