import type { MatrixEntries } from '../role-matrix';

/** Root operations of the pod module and who may call them. */
export const podMatrix: MatrixEntries = {};
