import { Args, ID, Mutation, Query, Resolver } from '@nestjs/graphql';
import { OperatorOnly } from '../common/auth/access.decorator';
import { assertId } from '../common/graphql/ids';
import { Connection, PageArgs } from '../common/pagination/connection';
import { CreateNodeJoinTokenPayload, Node } from './dtos/node.dto';
import { CreateNodeJoinTokenInput } from './dtos/node.inputs';
import { NodeService } from './node.service';

const NodeConnection = Connection(Node, 'Node');

@Resolver(() => Node)
export class NodeResolver {
  constructor(private readonly nodeService: NodeService) {}

  @OperatorOnly()
  @Query(() => NodeConnection, { description: 'Operator: every node, oldest first.' })
  nodes(@Args() page: PageArgs) {
    return this.nodeService.list(page);
  }

  @OperatorOnly()
  @Query(() => Node, { description: 'Operator: one node.' })
  node(@Args('id', { type: () => ID }) id: string): Promise<Node> {
    return this.nodeService.get(assertId(id));
  }

  @OperatorOnly()
  @Mutation(() => CreateNodeJoinTokenPayload, {
    description: 'Operator: a one-time token a host presents to join as a node; shown once.',
  })
  createNodeJoinToken(@Args('input') input: CreateNodeJoinTokenInput): Promise<CreateNodeJoinTokenPayload> {
    return this.nodeService.createJoinToken(input);
  }

  @OperatorOnly()
  @Mutation(() => Node, { description: 'Operator: place no new pods on the node (pods on it keep running).' })
  cordonNode(@Args('id', { type: () => ID }) id: string): Promise<Node> {
    return this.nodeService.cordon(assertId(id));
  }

  @OperatorOnly()
  @Mutation(() => Node, { description: 'Operator: let pods be placed on the node again; stops a drain.' })
  uncordonNode(@Args('id', { type: () => ID }) id: string): Promise<Node> {
    return this.nodeService.uncordon(assertId(id));
  }

  @OperatorOnly()
  @Mutation(() => Node, { description: 'Operator: cordon the node and have the scheduler move its pods away.' })
  drainNode(@Args('id', { type: () => ID }) id: string): Promise<Node> {
    return this.nodeService.drain(assertId(id));
  }
}
