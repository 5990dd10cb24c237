/**
 * An ATA disk as a block device: requests are split to the channel's transfer size and to
 * the command's sector-count limit (256 for 28-bit commands, 65536 for 48-bit), queued on
 * the channel, and completed by DMA interrupts.
 */
import { BlockError, checkBlockRequest, type BlockDevice, type BlockDeviceInfo } from "@paravirt/vm-interfaces";
import type { AtaChannel, AtaRequest } from "./channel.ts";
import type { AtaIdentity } from "./identify.ts";

const LBA28_LIMIT = 0x0fffffff;

export class AtaDisk implements BlockDevice {
  readonly info: BlockDeviceInfo;
  readonly identity: AtaIdentity;
  readonly channel: AtaChannel;
  readonly drive: 0 | 1;
  /** e.g. "hda", as the driver names it in logs. */
  readonly name: string;

  constructor(channel: AtaChannel, drive: 0 | 1, identity: AtaIdentity, name: string) {
    this.channel = channel;
    this.drive = drive;
    this.identity = identity;
    this.name = name;
    this.info = {
      sectorSize: identity.sectorSize,
      sectors: identity.sectors,
      physicalSectorSize: identity.sectorSize,
      readOnly: false,
      flush: identity.flushCache || identity.flushCacheExt,
      discard: false,
    };
  }

  read(sector: number, dst: Uint8Array): Promise<void> {
    return this.transfer("read", sector, [dst]);
  }

  write(sector: number, src: Uint8Array): Promise<void> {
    return this.transfer("write", sector, [src]);
  }

  /** Scatter-gather read: one DMA command (per transfer-size chunk) with a PRD entry per piece. */
  readv(sector: number, buffers: readonly Uint8Array[]): Promise<void> {
    return this.transfer("read", sector, buffers);
  }

  writev(sector: number, buffers: readonly Uint8Array[]): Promise<void> {
    return this.transfer("write", sector, buffers);
  }

  flush(): Promise<void> {
    if (!this.info.flush) return Promise.resolve();
    return this.channel.submit({ kind: "flush", drive: this.drive, ext: this.identity.flushCacheExt });
  }

  private transfer(kind: "read" | "write", sector: number, buffers: readonly Uint8Array[]): Promise<void> {
    const ss = this.info.sectorSize;
    let bytes = 0;
    for (const b of buffers) {
      if (b.length % ss !== 0) return Promise.reject(new BlockError("misaligned", `${b.length} bytes is not a whole number of ${ss}-byte sectors`));
      bytes += b.length;
    }
    const err = checkBlockRequest(this.info, sector, bytes, kind === "write");
    if (err) return Promise.reject(err);
    const perCommandLimit = this.identity.lba48 ? 65536 : 256;
    const chunk = Math.max(1, Math.min(Math.floor(this.channel.maxTransferBytes / ss), perCommandLimit)) * ss;
    // One command (the usual case): no splitting, no joining.
    if (bytes <= chunk) return this.channel.submit(this.command(kind, sector, bytes / ss, buffers));
    // Cut the buffer list into commands of at most `chunk` bytes, splitting a buffer where a
    // command boundary falls inside it.
    const parts: Promise<void>[] = [];
    let lba = sector;
    let pieces: Uint8Array[] = [];
    let inCommand = 0;
    const issue = () => {
      const n = inCommand / ss;
      parts.push(this.channel.submit(this.command(kind, lba, n, pieces)));
      lba += n;
      pieces = [];
      inCommand = 0;
    };
    for (const b of buffers) {
      let off = 0;
      while (off < b.length) {
        const take = Math.min(b.length - off, chunk - inCommand);
        pieces.push(b.subarray(off, off + take));
        inCommand += take;
        off += take;
        if (inCommand === chunk) issue();
      }
    }
    if (inCommand > 0) issue();
    return Promise.all(parts).then(() => undefined);
  }

  /** A DMA command of `sectors` sectors at `lba`: 48-bit when the address or the count needs it. */
  private command(kind: "read" | "write", lba: number, sectors: number, buffers: readonly Uint8Array[]): AtaRequest {
    const lba48 = this.identity.lba48 && (lba + sectors > LBA28_LIMIT || sectors > 256);
    return { kind, drive: this.drive, lba, sectors, buffers, lba48 };
  }
}
