-- DropForeignKey
ALTER TABLE "events" DROP CONSTRAINT "events_nodeId_fkey";

-- DropForeignKey
ALTER TABLE "events" DROP CONSTRAINT "events_podId_fkey";

-- CreateIndex
CREATE INDEX "api_tokens_memberId_idx" ON "api_tokens"("memberId");

-- CreateIndex
CREATE INDEX "events_nodeId_createdAt_idx" ON "events"("nodeId", "createdAt");

-- CreateIndex
CREATE INDEX "node_join_tokens_nodeId_idx" ON "node_join_tokens"("nodeId");

-- AddForeignKey
ALTER TABLE "events" ADD CONSTRAINT "events_podId_fkey" FOREIGN KEY ("podId") REFERENCES "pods"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "events" ADD CONSTRAINT "events_nodeId_fkey" FOREIGN KEY ("nodeId") REFERENCES "nodes"("id") ON DELETE SET NULL ON UPDATE CASCADE;


-- Invariants the schema language cannot state. Hand-written: the drift check does not see CHECK constraints.
ALTER TABLE "tenants" ADD CONSTRAINT "tenants_networkId_is_a_vni" CHECK ("networkId" BETWEEN 1 AND 16777215);
ALTER TABLE "tenants" ADD CONSTRAINT "tenants_quota_non_negative"
  CHECK ("maxPods" >= 0 AND "maxVcpus" >= 0 AND "maxMemoryMiB" >= 0 AND "usedPods" >= 0 AND "usedVcpus" >= 0 AND "usedMemoryMiB" >= 0);
ALTER TABLE "nodes" ADD CONSTRAINT "nodes_resources_non_negative"
  CHECK ("capacityVcpus" >= 0 AND "capacityMemoryMiB" >= 0 AND "capacityPods" >= 0
     AND "allocatedVcpus" >= 0 AND "allocatedMemoryMiB" >= 0 AND "allocatedPods" >= 0);
ALTER TABLE "pods" ADD CONSTRAINT "pods_size_positive" CHECK ("vcpus" > 0 AND "memoryMiB" > 0 AND "generation" >= 1);
