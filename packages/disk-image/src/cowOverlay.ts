/** Copy-on-write: a writable disk over an untouched base. */
import { checkBlockRequest, type BlockDevice, type BlockDeviceInfo } from "@paravirt/vm-interfaces";
import { RamDisk } from "./ramDisk.ts";
import { RawImageFile } from "./rawImageFile.ts";

const BITMAP_SECTORS = 1 << 15; // sectors per bitmap chunk (4 KiB of bits)

/**
 * A writable {@link BlockDevice} over `base` that never writes to `base`: written sectors go
 * to `overlay` (a device with the same geometry, by default a sparse {@link RamDisk}) and are
 * remembered in an in-memory sector bitmap; reads take each sector from the overlay when it
 * was written, else from the base. Like a QEMU `-snapshot` disk: the overlay is scratch
 * space for one run, not a format that can be reopened.
 *
 * A sector counts as written once a write covering it has completed; a failed write leaves
 * the sectors it covered reading as before (the old data), which the BlockDevice contract
 * allows. `flush()` flushes the overlay.
 *
 * **Errors:** requests reject with the `BlockError` of the checks or of base/overlay.
 */
export class CowOverlay implements BlockDevice {
  readonly info: BlockDeviceInfo;
  readonly base: BlockDevice;
  readonly overlay: BlockDevice;
  private readonly bitmap = new Map<number, Uint32Array>();
  private owned: RawImageFile | undefined;
  private written = 0;

  /**
   * @param base the device read for sectors never written; never written to.
   * @param overlay where writes go: same sector size, at least as many sectors, writable.
   * `RangeError` otherwise.
   */
  constructor(base: BlockDevice, overlay?: BlockDevice) {
    const b = base.info;
    const o = overlay ?? new RamDisk(b.sectors, { sectorSize: b.sectorSize });
    if (o.info.sectorSize !== b.sectorSize) throw new RangeError(`overlay sector size ${o.info.sectorSize} differs from the base's ${b.sectorSize}`);
    if (o.info.sectors < b.sectors) throw new RangeError(`overlay has ${o.info.sectors} sectors, the base ${b.sectors}`);
    if (o.info.readOnly) throw new RangeError("the overlay must be writable");
    this.base = base;
    this.overlay = o;
    this.info = {
      sectorSize: b.sectorSize,
      sectors: b.sectors,
      ...(b.physicalSectorSize !== undefined ? { physicalSectorSize: b.physicalSectorSize } : {}),
      readOnly: false,
      flush: o.info.flush,
      discard: false,
    };
  }

  /**
   * An overlay kept in a new sparse raw file at `path` (which must not exist), for bases too
   * large to shadow in memory. {@link close} closes (but keeps) that file.
   * **Errors:** as `RawImageFile.open` with `create`.
   */
  static async withFile(base: BlockDevice, path: string): Promise<CowOverlay> {
    const file = await RawImageFile.open(path, { create: base.info.sectors * base.info.sectorSize, sectorSize: base.info.sectorSize });
    const cow = new CowOverlay(base, file);
    cow.owned = file;
    return cow;
  }

  /** Number of distinct sectors written so far. */
  get writtenSectors(): number {
    return this.written;
  }

  /** Whether `sector` has been written (reads come from the overlay). */
  isWritten(sector: number): boolean {
    const c = this.bitmap.get(Math.floor(sector / BITMAP_SECTORS));
    if (c === undefined) return false;
    const i = sector % BITMAP_SECTORS;
    return (c[i >>> 5]! & (1 << (i & 31))) !== 0;
  }

  async read(sector: number, dst: Uint8Array): Promise<void> {
    const err = checkBlockRequest(this.info, sector, dst.length, false);
    if (err) throw err;
    const ss = this.info.sectorSize;
    const count = dst.length / ss;
    const parts: Promise<void>[] = [];
    let i = 0;
    while (i < count) {
      const fromOverlay = this.isWritten(sector + i);
      let j = i + 1;
      while (j < count && this.isWritten(sector + j) === fromOverlay) j++;
      const dev = fromOverlay ? this.overlay : this.base;
      parts.push(dev.read(sector + i, dst.subarray(i * ss, j * ss)));
      i = j;
    }
    await Promise.all(parts);
  }

  async write(sector: number, src: Uint8Array): Promise<void> {
    const err = checkBlockRequest(this.info, sector, src.length, true);
    if (err) throw err;
    await this.overlay.write(sector, src);
    const count = src.length / this.info.sectorSize;
    for (let s = sector; s < sector + count; s++) this.mark(s);
  }

  flush(): Promise<void> {
    return this.overlay.flush();
  }

  /** Closes the overlay file made by {@link withFile}; nothing otherwise. */
  async close(): Promise<void> {
    await this.owned?.close();
  }

  private mark(sector: number): void {
    const k = Math.floor(sector / BITMAP_SECTORS);
    let c = this.bitmap.get(k);
    if (c === undefined) this.bitmap.set(k, (c = new Uint32Array(BITMAP_SECTORS / 32)));
    const i = sector % BITMAP_SECTORS;
    const bit = 1 << (i & 31);
    if ((c[i >>> 5]! & bit) === 0) {
      c[i >>> 5] = c[i >>> 5]! | bit;
      this.written++;
    }
  }
}
