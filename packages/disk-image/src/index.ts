/**
 * @paravirt/disk-image: the block devices behind paravirt's disks. A raw image file, a sparse
 * RAM disk, a read-only view and a copy-on-write overlay, all implementing vm-interfaces
 * `BlockDevice`.
 * @packageDocumentation
 */
export { DiskImageError, type DiskImageErrorKind } from "./errors.ts";
export { RawImageFile, type RawImageOptions } from "./rawImageFile.ts";
export { RamDisk, type RamDiskOptions } from "./ramDisk.ts";
export { ReadOnlyBlockDevice } from "./readOnly.ts";
export { CowOverlay } from "./cowOverlay.ts";
