/**
 * @paravirt/blkfront: the Xen block frontend, a vm-interfaces `BlockDevice` over a backend
 * domain's disk through the blkif protocol [xen/include/public/io/blkif.h].
 * @packageDocumentation
 */
export {
  Blkfront, BLKFRONT_DEFAULT_MAX_INDIRECT_SEGMENTS, BLKFRONT_DEFAULT_MAX_RING_PAGE_ORDER,
  type BlkfrontOptions, type BlkfrontStats,
} from "./blkfront.ts";
