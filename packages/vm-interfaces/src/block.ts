/**
 * Block devices: the one contract shared by every disk in paravirt. An image file, a RAM disk,
 * the ATA driver's disks and blkfront all provide it; hw-ide and blkback consume it, so a
 * backend never knows what hardware (or which domain) stores its sectors (Mirage
 * `Mirage_block.S`, which blkfront `include`s and blkback is a functor over).
 */

/** What a block device is and can do. */
export interface BlockDeviceInfo {
  /** Logical sector size in bytes (512 or 4096). */
  readonly sectorSize: number;
  /** Capacity in logical sectors (< 2**53). */
  readonly sectors: number;
  /** Physical sector size (>= sectorSize); equal to sectorSize when unknown. */
  readonly physicalSectorSize?: number;
  readonly readOnly: boolean;
  /** `flush()` makes completed writes durable (a volatile write cache exists). */
  readonly flush: boolean;
  /** `discard()` is supported. */
  readonly discard: boolean;
}

/** Why a block request failed. */
export type BlockErrorKind =
  /** The range leaves the device. */
  | "out-of-range"
  /** A write or discard to a read-only device. */
  | "read-only"
  /** The buffer is not a whole number of sectors. */
  | "misaligned"
  /** The device does not implement the operation. */
  | "unsupported"
  /** The medium or the path to it failed (media error, timeout, backend gone). */
  | "io"
  /** The device was closed. */
  | "closed";

export class BlockError extends Error {
  override readonly name = "BlockError";
  readonly kind: BlockErrorKind;
  constructor(kind: BlockErrorKind, message: string) {
    super(message);
    this.kind = kind;
  }
}

/**
 * An asynchronous block device. Many requests may be in flight; they may complete in any
 * order, except that `flush()` completes only after every write that completed before it
 * was issued is durable.
 *
 * **Errors:** requests reject with {@link BlockError}; a failed write may have written part
 * of its range (as a disk may), a failed read leaves `dst` unspecified.
 */
export interface BlockDevice {
  readonly info: BlockDeviceInfo;
  /** Reads `dst.length / sectorSize` sectors starting at `sector` into `dst`. */
  read(sector: number, dst: Uint8Array): Promise<void>;
  /** Writes `src.length / sectorSize` sectors starting at `sector`. */
  write(sector: number, src: Uint8Array): Promise<void>;
  /** Makes every completed write durable. */
  flush(): Promise<void>;
  /** Tells the device the range's contents are no longer needed (reads may return zeros or old data). */
  discard?(sector: number, count: number): Promise<void>;
  /**
   * Scatter-gather read: consecutive sectors from `sector` into `buffers` in order, each a whole
   * number of sectors; one request to the device (a controller builds one descriptor list).
   * Optional: use {@link readVectored} to fall back to one `read` per buffer.
   */
  readv?(sector: number, buffers: readonly Uint8Array[]): Promise<void>;
  /** Scatter-gather write, the counterpart of {@link readv}. */
  writev?(sector: number, buffers: readonly Uint8Array[]): Promise<void>;
}

/** Reads consecutive sectors into `buffers`: one `readv` when the device has it, else a `read` per buffer. */
export function readVectored(device: BlockDevice, sector: number, buffers: readonly Uint8Array[]): Promise<void> {
  if (device.readv !== undefined) return device.readv(sector, buffers);
  return eachBuffer(device, sector, buffers, (s, b) => device.read(s, b));
}

/** Writes `buffers` to consecutive sectors: one `writev` when the device has it, else a `write` per buffer. */
export function writeVectored(device: BlockDevice, sector: number, buffers: readonly Uint8Array[]): Promise<void> {
  if (device.writev !== undefined) return device.writev(sector, buffers);
  return eachBuffer(device, sector, buffers, (s, b) => device.write(s, b));
}

async function eachBuffer(device: BlockDevice, sector: number, buffers: readonly Uint8Array[], op: (s: number, b: Uint8Array) => Promise<void>): Promise<void> {
  const ss = device.info.sectorSize;
  let at = sector;
  const calls: Promise<void>[] = [];
  for (const b of buffers) {
    if (b.length % ss !== 0) throw new BlockError("misaligned", `${b.length} bytes is not a whole number of ${ss}-byte sectors`);
    calls.push(op(at, b));
    at += b.length / ss;
  }
  const results = await Promise.allSettled(calls);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) throw failed.reason;
}

/** Checks a request against `info`; returns the error to reject with, or undefined when valid. */
export function checkBlockRequest(
  info: BlockDeviceInfo,
  sector: number,
  bytes: number,
  write: boolean,
): BlockError | undefined {
  if (bytes % info.sectorSize !== 0) {
    return new BlockError("misaligned", `${bytes} bytes is not a whole number of ${info.sectorSize}-byte sectors`);
  }
  const count = bytes / info.sectorSize;
  if (!Number.isSafeInteger(sector) || sector < 0 || sector + count > info.sectors) {
    return new BlockError("out-of-range", `sectors ${sector}+${count} leave a ${info.sectors}-sector device`);
  }
  if (write && info.readOnly) return new BlockError("read-only", "device is read-only");
  return undefined;
}
