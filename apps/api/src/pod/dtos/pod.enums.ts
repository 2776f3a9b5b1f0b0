import { registerEnumType } from '@nestjs/graphql';
import { Accelerator, ContainerPhase, DesiredState, EventType, PodPhase, RestartPolicy } from '@caas/db';

// Registered by reference: another module registering the same Prisma enum under the same name (the node
// module's Accelerator, say) yields one GraphQL type, not a clash.
registerEnumType(PodPhase, {
  name: 'PodPhase',
  description: 'What is true of the pod, as far as the control plane knows (docs/adr-002-pod-state-machine.md).',
});
registerEnumType(DesiredState, { name: 'DesiredState', description: 'What the tenant wants of the pod.' });
registerEnumType(RestartPolicy, {
  name: 'RestartPolicy',
  description: 'When an exited container is restarted inside its VM.',
});
registerEnumType(ContainerPhase, { name: 'ContainerPhase' });
registerEnumType(Accelerator, {
  name: 'Accelerator',
  description: 'KVM, or TCG (emulation: not a security boundary, only where configuration allows it).',
});
registerEnumType(EventType, { name: 'EventType' });

export { Accelerator, ContainerPhase, DesiredState, EventType, PodPhase, RestartPolicy };
