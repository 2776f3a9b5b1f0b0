export { DEFAULT_UNPACK_LIMITS, UnpackBudget, type UnpackLimits } from './limits';
export { readTar, type TarEntry, type TarEntryType, type TarHeader, type TarReaderLimits } from './tar-reader';
export { decompressLayer, sniffCompression, type LayerCompression } from './decompress';
export { entryPathParts } from './paths';
export { applyLayer, type LayerStats } from './apply-layer';
export { MAX_IMAGE_CONFIG_BYTES, parseImageRunConfig, type ImageRunConfig } from './run-config';
export { resolveUser, type ResolvedUser } from './resolve-user';
export { buildExt4Image, measureTree, type Ext4Image, type Ext4Options, type TreeUsage } from './ext4';
