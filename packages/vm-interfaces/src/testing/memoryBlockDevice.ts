import { checkBlockRequest, BlockError, type BlockDevice, type BlockDeviceInfo } from "../block.ts";

/**
 * A block device in a Uint8Array that records its requests: the reference disk for tests of
 * block consumers. `failNext` makes the next request fail with an I/O error.
 */
export class MemoryBlockDevice implements BlockDevice {
  readonly info: BlockDeviceInfo;
  readonly data: Uint8Array;
  readonly log: { op: "read" | "write" | "flush" | "discard"; sector: number; bytes: number }[] = [];
  failNext = false;

  constructor(sectors: number, opts: { sectorSize?: number; readOnly?: boolean; discard?: boolean } = {}) {
    const sectorSize = opts.sectorSize ?? 512;
    this.info = { sectorSize, sectors, readOnly: opts.readOnly ?? false, flush: true, discard: opts.discard ?? true };
    this.data = new Uint8Array(sectors * sectorSize);
  }

  private fail(): BlockError | undefined {
    if (!this.failNext) return undefined;
    this.failNext = false;
    return new BlockError("io", "injected I/O error");
  }

  async read(sector: number, dst: Uint8Array): Promise<void> {
    const err = checkBlockRequest(this.info, sector, dst.length, false) ?? this.fail();
    if (err) throw err;
    this.log.push({ op: "read", sector, bytes: dst.length });
    const o = sector * this.info.sectorSize;
    dst.set(this.data.subarray(o, o + dst.length));
  }

  async write(sector: number, src: Uint8Array): Promise<void> {
    const err = checkBlockRequest(this.info, sector, src.length, true) ?? this.fail();
    if (err) throw err;
    this.log.push({ op: "write", sector, bytes: src.length });
    this.data.set(src, sector * this.info.sectorSize);
  }

  async flush(): Promise<void> {
    const err = this.fail();
    if (err) throw err;
    this.log.push({ op: "flush", sector: 0, bytes: 0 });
  }

  async discard(sector: number, count: number): Promise<void> {
    const err = checkBlockRequest(this.info, sector, count * this.info.sectorSize, true) ?? this.fail();
    if (err) throw err;
    this.log.push({ op: "discard", sector, bytes: count * this.info.sectorSize });
    this.data.fill(0, sector * this.info.sectorSize, (sector + count) * this.info.sectorSize);
  }
}
