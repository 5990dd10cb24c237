/** A sparse disk in host memory. */
import { BlockError, checkBlockRequest, type BlockDevice, type BlockDeviceInfo } from "@paravirt/vm-interfaces";

/** Options of {@link RamDisk}. */
export interface RamDiskOptions {
  /** Logical sector size in bytes (default 512). */
  sectorSize?: number;
  readOnly?: boolean;
}

const CHUNK = 64 * 1024;

/**
 * A RAM disk that allocates memory only for chunks (64 KiB) that were written with data:
 * unwritten sectors read as zeros, so a large empty disk costs nothing. Requests complete
 * asynchronously (as a promise) but in issue order. `info.flush` is false: there is no
 * volatile cache, `flush()` resolves at once. Discard frees whole chunks and zeroes the rest.
 *
 * **Errors:** requests reject with `BlockError` ("out-of-range", "misaligned", "read-only").
 */
export class RamDisk implements BlockDevice {
  readonly info: BlockDeviceInfo;
  private readonly chunks = new Map<number, Uint8Array>();
  private readonly chunkBytes: number;

  /** A zero-filled disk of `sectors` sectors. `RangeError` for a bad size. */
  constructor(sectors: number, options: RamDiskOptions = {}) {
    const sectorSize = options.sectorSize ?? 512;
    if (!Number.isSafeInteger(sectorSize) || sectorSize < 512 || (sectorSize & (sectorSize - 1)) !== 0) {
      throw new RangeError(`sectorSize ${sectorSize} must be a power of two >= 512`);
    }
    if (!Number.isSafeInteger(sectors) || sectors <= 0) throw new RangeError(`sectors ${sectors} must be a positive integer`);
    this.chunkBytes = Math.max(CHUNK, sectorSize);
    this.info = { sectorSize, sectors, readOnly: options.readOnly ?? false, flush: false, discard: true };
  }

  /** A disk holding a copy of `bytes` (a whole number of sectors). */
  static from(bytes: Uint8Array, options: RamDiskOptions = {}): RamDisk {
    const ss = options.sectorSize ?? 512;
    if (bytes.length === 0 || bytes.length % ss !== 0) {
      throw new RangeError(`${bytes.length} bytes is not a positive whole number of ${ss}-byte sectors`);
    }
    const d = new RamDisk(bytes.length / ss, options);
    d.copyIn(0, bytes);
    return d;
  }

  /** Bytes of host memory holding data. */
  get allocatedBytes(): number {
    return this.chunks.size * this.chunkBytes;
  }

  /** A dense copy of the whole disk. */
  toBytes(): Uint8Array {
    const out = new Uint8Array(this.info.sectors * this.info.sectorSize);
    this.copyOut(0, out);
    return out;
  }

  async read(sector: number, dst: Uint8Array): Promise<void> {
    const err = checkBlockRequest(this.info, sector, dst.length, false);
    if (err) throw err;
    this.copyOut(sector * this.info.sectorSize, dst);
  }

  async write(sector: number, src: Uint8Array): Promise<void> {
    const err = checkBlockRequest(this.info, sector, src.length, true);
    if (err) throw err;
    this.copyIn(sector * this.info.sectorSize, src);
  }

  /** Scatter-gather read of consecutive sectors into `buffers` (each whole sectors). */
  async readv(sector: number, buffers: readonly Uint8Array[]): Promise<void> {
    const ss = this.info.sectorSize;
    const err = vectorError(this.info, sector, buffers, false);
    if (err) throw err;
    let at = sector * ss;
    for (const b of buffers) {
      this.copyOut(at, b);
      at += b.length;
    }
  }

  async writev(sector: number, buffers: readonly Uint8Array[]): Promise<void> {
    const ss = this.info.sectorSize;
    const err = vectorError(this.info, sector, buffers, true);
    if (err) throw err;
    let at = sector * ss;
    for (const b of buffers) {
      this.copyIn(at, b);
      at += b.length;
    }
  }

  async flush(): Promise<void> {}

  async discard(sector: number, count: number): Promise<void> {
    const ss = this.info.sectorSize;
    const err = checkBlockRequest(this.info, sector, count * ss, true);
    if (err) throw err;
    let at = sector * ss;
    const end = (sector + count) * ss;
    while (at < end) {
      const idx = Math.floor(at / this.chunkBytes);
      const off = at - idx * this.chunkBytes;
      const n = Math.min(this.chunkBytes - off, end - at);
      if (n === this.chunkBytes) this.chunks.delete(idx);
      else this.chunks.get(idx)?.fill(0, off, off + n);
      at += n;
    }
  }

  private copyOut(byte: number, dst: Uint8Array): void {
    let done = 0;
    while (done < dst.length) {
      const at = byte + done;
      const idx = Math.floor(at / this.chunkBytes);
      const off = at - idx * this.chunkBytes;
      const n = Math.min(this.chunkBytes - off, dst.length - done);
      const c = this.chunks.get(idx);
      if (c === undefined) dst.fill(0, done, done + n);
      else dst.set(c.subarray(off, off + n), done);
      done += n;
    }
  }

  private copyIn(byte: number, src: Uint8Array): void {
    let done = 0;
    while (done < src.length) {
      const at = byte + done;
      const idx = Math.floor(at / this.chunkBytes);
      const off = at - idx * this.chunkBytes;
      const n = Math.min(this.chunkBytes - off, src.length - done);
      const part = src.subarray(done, done + n);
      let c = this.chunks.get(idx);
      if (c === undefined) {
        if (isZero(part)) {
          done += n;
          continue;
        }
        c = new Uint8Array(this.chunkBytes);
        this.chunks.set(idx, c);
      }
      c.set(part, off);
      done += n;
    }
  }
}

function isZero(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

/** The error a vectored request earns, checked as a whole before anything moves. */
export function vectorError(info: BlockDeviceInfo, sector: number, buffers: readonly Uint8Array[], write: boolean): BlockError | undefined {
  let bytes = 0;
  for (const b of buffers) {
    if (b.length % info.sectorSize !== 0) return new BlockError("misaligned", `${b.length} bytes is not a whole number of ${info.sectorSize}-byte sectors`);
    bytes += b.length;
  }
  return checkBlockRequest(info, sector, bytes, write);
}
