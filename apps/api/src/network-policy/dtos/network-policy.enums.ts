import { registerEnumType } from '@nestjs/graphql';
import { PolicyType } from '@caas/db';

/** Transport protocols a network policy port can name. */
export const NetworkProtocol = { TCP: 'TCP', UDP: 'UDP', SCTP: 'SCTP' } as const;
export type NetworkProtocol = (typeof NetworkProtocol)[keyof typeof NetworkProtocol];

/** The direction of a deny rule, seen from the selected pods. */
export const TrafficDirection = { INGRESS: 'INGRESS', EGRESS: 'EGRESS' } as const;
export type TrafficDirection = (typeof TrafficDirection)[keyof typeof TrafficDirection];

registerEnumType(PolicyType, {
  name: 'PolicyType',
  description: 'Which traffic of the selected pods a policy isolates: to them (INGRESS), from them (EGRESS).',
});
registerEnumType(NetworkProtocol, { name: 'NetworkProtocol' });
registerEnumType(TrafficDirection, {
  name: 'TrafficDirection',
  description: 'INGRESS: traffic to the selected pods. EGRESS: traffic from them.',
});

export { PolicyType };
