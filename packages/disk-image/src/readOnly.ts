/** A read-only view of a block device. */
import { BlockError, checkBlockRequest, type BlockDevice, type BlockDeviceInfo } from "@paravirt/vm-interfaces";

/**
 * Wraps `inner` so that it reports `readOnly: true` and refuses writes and discards with
 * BlockError "read-only" (without reaching `inner`). Reads pass through; `flush()` resolves
 * at once (nothing can have been written through this view).
 */
export class ReadOnlyBlockDevice implements BlockDevice {
  readonly info: BlockDeviceInfo;
  readonly inner: BlockDevice;

  constructor(inner: BlockDevice) {
    this.inner = inner;
    this.info = { ...inner.info, readOnly: true, discard: false };
  }

  read(sector: number, dst: Uint8Array): Promise<void> {
    return this.inner.read(sector, dst);
  }

  write(sector: number, src: Uint8Array): Promise<void> {
    return Promise.reject(checkBlockRequest(this.info, sector, src.length, true) ?? new BlockError("read-only", "device is read-only"));
  }

  async flush(): Promise<void> {}
}
