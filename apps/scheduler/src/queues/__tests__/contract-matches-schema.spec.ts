import { DesiredState, PodPhase, TenantStatus } from '@caas/db';
import { podChangedSchema, podCreatedSchema, tenantChangedSchema } from '@caas/queue-contracts';

// The contract cannot import the Prisma client (a type:contract lib depends on utils only), so it repeats the
// enums it validates; this keeps the copies equal to the database's.
describe('queue contract enums', () => {
  it('are the Prisma enums', () => {
    expect([...podCreatedSchema.shape.phase.options].sort()).toEqual(Object.values(PodPhase).sort());
    expect([...podChangedSchema.shape.previousPhase.options].sort()).toEqual(Object.values(PodPhase).sort());
    expect([...podCreatedSchema.shape.desiredState.options].sort()).toEqual(Object.values(DesiredState).sort());
    expect([...tenantChangedSchema.shape.status.options].sort()).toEqual(Object.values(TenantStatus).sort());
  });
});
