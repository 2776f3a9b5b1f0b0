-- AlterTable
ALTER TABLE "nodes" ADD COLUMN     "appliedVersion" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "credentialHash" BYTEA,
ADD COLUMN     "usage" JSONB NOT NULL DEFAULT '{}';

-- AlterTable
ALTER TABLE "pods" ADD COLUMN     "lostCount" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "placeAfter" TIMESTAMPTZ(3),
ADD COLUMN     "placement" INTEGER NOT NULL DEFAULT 0;

