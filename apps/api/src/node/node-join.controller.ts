import { Body, Controller, HttpCode, Post, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { NodeJoinResponse } from '@caas/queue-contracts';
import { NODE_JOIN_PATH } from '@caas/queue-contracts';
import { Public } from '../common/auth/access.decorator';
import { NodeJoinException, NodeJoinExceptionCode, httpStatusOfJoinError } from './node-join.exception';
import { NodeJoinService } from './node-join.service';

export interface NodeJoinErrorBody {
  error: { code: NodeJoinExceptionCode; message: string };
}

/**
 * The one REST endpoint of the node contract (ADR-009). Public: the one-time join token in the body is the
 * credential. Errors are `{ error: { code, message } }` with a stable code, never a stack.
 */
@Controller()
export class NodeJoinController {
  constructor(private readonly joins: NodeJoinService) {}

  @Public()
  @Post(NODE_JOIN_PATH)
  @HttpCode(201)
  async join(
    @Body() body: unknown,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<NodeJoinResponse | NodeJoinErrorBody> {
    reply.header('cache-control', 'no-store');
    try {
      await this.joins.checkRate(request.ip);
      return await this.joins.join(body);
    } catch (error) {
      const failure =
        error instanceof NodeJoinException
          ? error
          : new NodeJoinException(NodeJoinExceptionCode.INTERNAL, 'The join failed; retry later.');
      reply.status(httpStatusOfJoinError(failure.code));
      return { error: { code: failure.code, message: failure.message } };
    }
  }
}
