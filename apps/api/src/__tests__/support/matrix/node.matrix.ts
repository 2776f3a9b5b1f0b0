import type { MatrixEntries } from '../role-matrix';

/** Root operations of the node module and who may call them. */
export const nodeMatrix: MatrixEntries = {};
