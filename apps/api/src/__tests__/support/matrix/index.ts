import type { MatrixEntries } from '../role-matrix';
import { foundationMatrix } from './foundation.matrix';
import { networkPolicyMatrix } from './network-policy.matrix';
import { nodeMatrix } from './node.matrix';
import { podLogMatrix } from './pod-log.matrix';
import { podMatrix } from './pod.matrix';

/** Every root operation of the API, by module. */
export const ROLE_MATRIX: MatrixEntries = {
  ...foundationMatrix,
  ...podMatrix,
  ...networkPolicyMatrix,
  ...nodeMatrix,
  ...podLogMatrix,
};
