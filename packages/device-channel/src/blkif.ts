/**
 * The block device channel [xen/include/public/io/blkif.h], byte for byte.
 *
 * `struct blkif_request` contains `uint64_t` fields, which i386 aligns to 4 bytes and x86-64
 * to 8: a front end announces which layout it speaks with the `protocol` xenstore key
 * (`x86_32-abi`, `x86_64-abi` [io/protocols.h]), and a back end must decode either. Both are
 * described here; the header-comparison test checks every offset against Xen's own headers
 * compiled with gcc -m32 and -m64.
 */

/** Operations [blkif.h BLKIF_OP_*]. */
export const BLKIF_OP = {
  READ: 0,
  WRITE: 1,
  WRITE_BARRIER: 2,
  FLUSH_DISKCACHE: 3,
  RESERVED_1: 4,
  DISCARD: 5,
  INDIRECT: 6,
} as const;

/** Response status [blkif.h BLKIF_RSP_*]. */
export const BLKIF_RSP = {
  EOPNOTSUPP: -2,
  ERROR: -1,
  OKAY: 0,
} as const;

/** Segments carried directly in a request [blkif.h]. */
export const BLKIF_MAX_SEGMENTS_PER_REQUEST = 11;
/** Indirect pages one BLKIF_OP_INDIRECT request may name [blkif.h]. */
export const BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST = 8;
/** Segments in one indirect page: 4096 / sizeof(struct blkif_request_segment). */
export const BLKIF_SEGS_PER_INDIRECT_FRAME = 512;
/** BLKIF_DISCARD_SECURE flag of a discard request. */
export const BLKIF_DISCARD_SECURE = 1 << 0;
/** Sector unit of sector_number, first_sect and last_sect, whatever the disk's sector size. */
export const BLKIF_SECTOR_SIZE = 512;

/** VDISK_* bits of the backend's `info` key [blkif.h]. */
export const VDISK = { CDROM: 0x1, REMOVABLE: 0x2, READONLY: 0x4 } as const;

/** `protocol` key values [io/protocols.h XEN_IO_PROTO_ABI_*]. */
export const XEN_IO_PROTO_ABI = {
  X86_32: "x86_32-abi",
  X86_64: "x86_64-abi",
  ARM: "arm-abi",
} as const;

/** `struct blkif_request_segment`: `grant_ref_t gref; uint8_t first_sect, last_sect;` + 2 pad. */
export const BLKIF_SEGMENT = { GREF: 0, FIRST_SECT: 4, LAST_SECT: 5, SIZE: 8 } as const;

/** Offsets and sizes of the blkif structures for one ABI. */
export interface BlkifLayout {
  readonly abi: "x86_32" | "x86_64";
  readonly protocol: string;
  /** sizeof(union blkif_sring_entry): the ring stride. */
  readonly entrySize: number;
  readonly request: { readonly OPERATION: 0; readonly NR_SEGMENTS: 1; readonly HANDLE: 2; readonly ID: number; readonly SECTOR_NUMBER: number; readonly SEG: number; readonly SIZE: number };
  readonly discard: { readonly OPERATION: 0; readonly FLAG: 1; readonly HANDLE: 2; readonly ID: number; readonly SECTOR_NUMBER: number; readonly NR_SECTORS: number; readonly SIZE: number };
  readonly indirect: { readonly OPERATION: 0; readonly INDIRECT_OP: 1; readonly NR_SEGMENTS: 2; readonly ID: number; readonly SECTOR_NUMBER: number; readonly HANDLE: number; readonly INDIRECT_GREFS: number; readonly SIZE: number };
  readonly response: { readonly ID: 0; readonly OPERATION: 8; readonly STATUS: 10; readonly SIZE: number };
}

/** i386 layout: `uint64_t` aligned to 4. */
export const BLKIF_X86_32: BlkifLayout = {
  abi: "x86_32",
  protocol: XEN_IO_PROTO_ABI.X86_32,
  entrySize: 108,
  request: { OPERATION: 0, NR_SEGMENTS: 1, HANDLE: 2, ID: 4, SECTOR_NUMBER: 12, SEG: 20, SIZE: 108 },
  discard: { OPERATION: 0, FLAG: 1, HANDLE: 2, ID: 4, SECTOR_NUMBER: 12, NR_SECTORS: 20, SIZE: 28 },
  indirect: { OPERATION: 0, INDIRECT_OP: 1, NR_SEGMENTS: 2, ID: 4, SECTOR_NUMBER: 12, HANDLE: 20, INDIRECT_GREFS: 24, SIZE: 64 },
  response: { ID: 0, OPERATION: 8, STATUS: 10, SIZE: 12 },
};

/** x86-64 layout: `uint64_t` aligned to 8. */
export const BLKIF_X86_64: BlkifLayout = {
  abi: "x86_64",
  protocol: XEN_IO_PROTO_ABI.X86_64,
  entrySize: 112,
  request: { OPERATION: 0, NR_SEGMENTS: 1, HANDLE: 2, ID: 8, SECTOR_NUMBER: 16, SEG: 24, SIZE: 112 },
  discard: { OPERATION: 0, FLAG: 1, HANDLE: 2, ID: 8, SECTOR_NUMBER: 16, NR_SECTORS: 24, SIZE: 32 },
  indirect: { OPERATION: 0, INDIRECT_OP: 1, NR_SEGMENTS: 2, ID: 8, SECTOR_NUMBER: 16, HANDLE: 24, INDIRECT_GREFS: 28, SIZE: 64 },
  response: { ID: 0, OPERATION: 8, STATUS: 10, SIZE: 16 },
};

/** The layout a `protocol` key names; a missing key means the back end's native ABI (x86_64 here). */
export function blkifLayoutForProtocol(protocol: string | undefined): BlkifLayout | undefined {
  if (protocol === undefined || protocol === "" || protocol === XEN_IO_PROTO_ABI.X86_64) return BLKIF_X86_64;
  if (protocol === XEN_IO_PROTO_ABI.X86_32) return BLKIF_X86_32;
  return undefined;
}

export interface BlkifSegment {
  gref: number;
  firstSect: number;
  lastSect: number;
}

/** READ, WRITE, WRITE_BARRIER, FLUSH_DISKCACHE (and any unknown op, decoded this way). */
export interface BlkifRwRequest {
  operation: number;
  /** As the front end wrote it (may exceed the segments decoded: validate it). */
  nrSegments: number;
  handle: number;
  id: bigint;
  sectorNumber: number;
  /** The first min(nrSegments, 11) segments. */
  segments: BlkifSegment[];
}

export interface BlkifDiscardRequest {
  operation: typeof BLKIF_OP.DISCARD;
  flag: number;
  handle: number;
  id: bigint;
  sectorNumber: number;
  nrSectors: number;
}

export interface BlkifIndirectRequest {
  operation: typeof BLKIF_OP.INDIRECT;
  indirectOp: number;
  nrSegments: number;
  handle: number;
  id: bigint;
  sectorNumber: number;
  /** The pages holding the segment arrays: ceil(nrSegments / 512) of them (at most 8 decoded). */
  indirectGrefs: number[];
}

export type BlkifRequest = BlkifRwRequest | BlkifDiscardRequest | BlkifIndirectRequest;

export interface BlkifResponse {
  id: bigint;
  operation: number;
  status: number;
}

function getU64(v: DataView, off: number): number {
  return v.getUint32(off, true) + v.getUint32(off + 4, true) * 2 ** 32;
}
function setU64(v: DataView, off: number, n: number): void {
  v.setUint32(off, n >>> 0, true);
  v.setUint32(off + 4, Math.floor(n / 2 ** 32) >>> 0, true);
}

/** Writes `req` at `off` in the ABI of `layout`. Fields beyond the variant's size are left alone. */
export function encodeBlkifRequest(v: DataView, off: number, req: BlkifRequest, layout: BlkifLayout): void {
  v.setUint8(off, req.operation);
  if (req.operation === BLKIF_OP.DISCARD) {
    const r = req as BlkifDiscardRequest;
    const l = layout.discard;
    v.setUint8(off + l.FLAG, r.flag);
    v.setUint16(off + l.HANDLE, r.handle, true);
    v.setBigUint64(off + l.ID, r.id, true);
    setU64(v, off + l.SECTOR_NUMBER, r.sectorNumber);
    setU64(v, off + l.NR_SECTORS, r.nrSectors);
    return;
  }
  if (req.operation === BLKIF_OP.INDIRECT) {
    const r = req as BlkifIndirectRequest;
    const l = layout.indirect;
    v.setUint8(off + l.INDIRECT_OP, r.indirectOp);
    v.setUint16(off + l.NR_SEGMENTS, r.nrSegments, true);
    v.setBigUint64(off + l.ID, r.id, true);
    setU64(v, off + l.SECTOR_NUMBER, r.sectorNumber);
    v.setUint16(off + l.HANDLE, r.handle, true);
    for (let i = 0; i < BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST; i++) {
      v.setUint32(off + l.INDIRECT_GREFS + 4 * i, r.indirectGrefs[i] ?? 0, true);
    }
    return;
  }
  const r = req as BlkifRwRequest;
  const l = layout.request;
  v.setUint8(off + l.NR_SEGMENTS, r.nrSegments);
  v.setUint16(off + l.HANDLE, r.handle, true);
  v.setBigUint64(off + l.ID, r.id, true);
  setU64(v, off + l.SECTOR_NUMBER, r.sectorNumber);
  const n = Math.min(r.segments.length, BLKIF_MAX_SEGMENTS_PER_REQUEST);
  for (let i = 0; i < n; i++) encodeBlkifSegment(v, off + l.SEG + i * BLKIF_SEGMENT.SIZE, r.segments[i]!);
}

export function encodeBlkifSegment(v: DataView, off: number, s: BlkifSegment): void {
  v.setUint32(off + BLKIF_SEGMENT.GREF, s.gref >>> 0, true);
  v.setUint8(off + BLKIF_SEGMENT.FIRST_SECT, s.firstSect);
  v.setUint8(off + BLKIF_SEGMENT.LAST_SECT, s.lastSect);
  v.setUint16(off + 6, 0, true);
}

export function decodeBlkifSegment(v: DataView, off: number): BlkifSegment {
  return {
    gref: v.getUint32(off + BLKIF_SEGMENT.GREF, true),
    firstSect: v.getUint8(off + BLKIF_SEGMENT.FIRST_SECT),
    lastSect: v.getUint8(off + BLKIF_SEGMENT.LAST_SECT),
  };
}

/**
 * Reads (copies) the request at `off`. Total: any bytes decode to some request, never an
 * exception, so a back end validates the result rather than trusting it. Copying matters:
 * the front end can rewrite the slot after the back end has looked at it.
 */
export function decodeBlkifRequest(v: DataView, off: number, layout: BlkifLayout): BlkifRequest {
  const operation = v.getUint8(off);
  if (operation === BLKIF_OP.DISCARD) {
    const l = layout.discard;
    return {
      operation,
      flag: v.getUint8(off + l.FLAG),
      handle: v.getUint16(off + l.HANDLE, true),
      id: v.getBigUint64(off + l.ID, true),
      sectorNumber: getU64(v, off + l.SECTOR_NUMBER),
      nrSectors: getU64(v, off + l.NR_SECTORS),
    };
  }
  if (operation === BLKIF_OP.INDIRECT) {
    const l = layout.indirect;
    const nrSegments = v.getUint16(off + l.NR_SEGMENTS, true);
    const pages = Math.min(Math.ceil(nrSegments / BLKIF_SEGS_PER_INDIRECT_FRAME), BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST);
    const indirectGrefs: number[] = [];
    for (let i = 0; i < pages; i++) indirectGrefs.push(v.getUint32(off + l.INDIRECT_GREFS + 4 * i, true));
    return {
      operation,
      indirectOp: v.getUint8(off + l.INDIRECT_OP),
      nrSegments,
      handle: v.getUint16(off + l.HANDLE, true),
      id: v.getBigUint64(off + l.ID, true),
      sectorNumber: getU64(v, off + l.SECTOR_NUMBER),
      indirectGrefs,
    };
  }
  const l = layout.request;
  const nrSegments = v.getUint8(off + l.NR_SEGMENTS);
  const n = Math.min(nrSegments, BLKIF_MAX_SEGMENTS_PER_REQUEST);
  const segments: BlkifSegment[] = new Array(n);
  for (let i = 0; i < n; i++) segments[i] = decodeBlkifSegment(v, off + l.SEG + i * BLKIF_SEGMENT.SIZE);
  return {
    operation,
    nrSegments,
    handle: v.getUint16(off + l.HANDLE, true),
    id: v.getBigUint64(off + l.ID, true),
    sectorNumber: getU64(v, off + l.SECTOR_NUMBER),
    segments,
  };
}

/** Reads only the `id` of a request (the same place for every variant of one ABI). */
export function decodeBlkifRequestId(v: DataView, off: number, layout: BlkifLayout): bigint {
  return v.getBigUint64(off + layout.request.ID, true);
}

export function encodeBlkifResponse(v: DataView, off: number, rsp: BlkifResponse, layout: BlkifLayout): void {
  const l = layout.response;
  v.setBigUint64(off + l.ID, rsp.id, true);
  v.setUint8(off + l.OPERATION, rsp.operation);
  v.setUint8(off + l.OPERATION + 1, 0);
  v.setInt16(off + l.STATUS, rsp.status, true);
}

export function decodeBlkifResponse(v: DataView, off: number, layout: BlkifLayout): BlkifResponse {
  const l = layout.response;
  return {
    id: v.getBigUint64(off + l.ID, true),
    operation: v.getUint8(off + l.OPERATION),
    status: v.getInt16(off + l.STATUS, true),
  };
}
