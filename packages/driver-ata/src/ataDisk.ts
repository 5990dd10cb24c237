/**
 * An ATA disk as a block device: requests are split to the channel's transfer size and to
 * the command's sector-count limit (256 for 28-bit commands, 65536 for 48-bit), queued on
 * the channel, and completed by DMA interrupts.
 */
import { checkBlockRequest, type BlockDevice, type BlockDeviceInfo } from "@paravirt/vm-interfaces";
import type { AtaChannel } from "./channel.ts";
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
    return this.transfer("read", sector, dst);
  }

  write(sector: number, src: Uint8Array): Promise<void> {
    return this.transfer("write", sector, src);
  }

  flush(): Promise<void> {
    if (!this.info.flush) return Promise.resolve();
    return this.channel.submit({ kind: "flush", drive: this.drive, ext: this.identity.flushCacheExt });
  }

  private async transfer(kind: "read" | "write", sector: number, buf: Uint8Array): Promise<void> {
    const err = checkBlockRequest(this.info, sector, buf.length, kind === "write");
    if (err) throw err;
    const ss = this.info.sectorSize;
    const perCommandLimit = this.identity.lba48 ? 65536 : 256;
    const chunk = Math.max(1, Math.min(Math.floor(this.channel.maxTransferBytes / ss), perCommandLimit));
    const total = buf.length / ss;
    const parts: Promise<void>[] = [];
    for (let done = 0; done < total; done += chunk) {
      const n = Math.min(chunk, total - done);
      const lba = sector + done;
      const lba48 = this.identity.lba48 && (lba + n > LBA28_LIMIT || n > 256);
      parts.push(this.channel.submit({ kind, drive: this.drive, lba, sectors: n, buffer: buf.subarray(done * ss, (done + n) * ss), lba48 }));
    }
    await Promise.all(parts);
  }
}
