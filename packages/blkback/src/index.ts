/**
 * @paravirt/blkback: the Xen block backend. Serves a vm-interfaces `BlockDevice` to a frontend
 * domain over the blkif protocol [xen/include/public/io/blkif.h].
 * @packageDocumentation
 */
export {
  Blkback, BLKBACK_DEFAULT_MAX_INDIRECT_SEGMENTS, BLKBACK_DEFAULT_MAX_RING_PAGE_ORDER, XENBUS_MAX_RING_GRANT_ORDER,
  type BlkbackOptions, type BlkbackStats,
} from "./blkback.ts";
