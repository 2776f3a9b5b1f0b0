import { Module } from '@nestjs/common';
import { NodeJoinController } from './node-join.controller';
import { NodeJoinService } from './node-join.service';
import { NodeResolver } from './node.resolver';
import { NodeService } from './node.service';

@Module({ controllers: [NodeJoinController], providers: [NodeResolver, NodeService, NodeJoinService] })
export class NodeModule {}
