-- AlterTable
ALTER TABLE "tenants" ADD COLUMN     "generation" INTEGER NOT NULL DEFAULT 1;

