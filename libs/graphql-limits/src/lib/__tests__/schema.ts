import { buildSchema } from 'graphql';

/** Recursive enough (Pod.containers) to express any depth. */
export const schema = buildSchema(`
  type Query { viewer: Viewer, pods(first: Int, last: Int, after: String): PodConnection }
  type Viewer { tenant: Tenant }
  type Tenant { name: String, pods(first: Int): PodConnection }
  type PodConnection { edges: [PodEdge] }
  type PodEdge { node: Pod }
  type Pod { id: ID, name: String, containers(first: Int): [Pod] }
`);
