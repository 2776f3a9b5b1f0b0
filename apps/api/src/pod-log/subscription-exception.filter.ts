import type { ArgumentsHost } from '@nestjs/common';
import { Catch, Logger } from '@nestjs/common';
import type { GqlExceptionFilter } from '@nestjs/graphql';
import type { GraphQLError } from 'graphql';
import { publicGraphQLError } from '../common/graphql/graphql-options';

/**
 * For `@Subscription()` handlers only. An error raised while a subscription starts (access guard, tenant
 * check, bounds) does not pass through Mercurius' `errorFormatter`: Mercurius sends it to the socket as is.
 * This maps it the way `errorFormatter` maps query errors (public code and reason, generic INTERNAL for
 * anything of ours, logged), so a refused subscription reads exactly like a refused query.
 */
@Catch()
export class SubscriptionExceptionFilter implements GqlExceptionFilter {
  private readonly logger = new Logger('Subscription');

  catch(exception: unknown, _host: ArgumentsHost): GraphQLError {
    return publicGraphQLError(exception, (internal) =>
      this.logger.error(internal instanceof Error ? (internal.stack ?? internal.message) : String(internal)),
    );
  }
}
