/**
 * A raw disk image in a host file: sector `n` lives at byte `n * sectorSize`, nothing else in
 * the file (QEMU's `raw` format, what `dd` and `qemu-img create -f raw` produce).
 */
import { open, unlink, type FileHandle } from "node:fs/promises";
import { BlockError, checkBlockRequest, type BlockDevice, type BlockDeviceInfo } from "@paravirt/vm-interfaces";
import { DiskImageError, errnoCode } from "./errors.ts";
import { vectorError } from "./ramDisk.ts";

/** Options of {@link RawImageFile.open}. */
export interface RawImageOptions {
  /** Open read-only: writes reject with BlockError "read-only". Default false. */
  readOnly?: boolean;
  /**
   * Create a new image of this many bytes (a whole number of sectors, sparse where the file
   * system allows). The path must not exist yet. Not allowed together with `readOnly`.
   */
  create?: number;
  /** Logical sector size in bytes: 512 (default) or 4096. */
  sectorSize?: number;
}

const SECTOR_SIZES = [512, 4096] as const;

/**
 * A {@link BlockDevice} backed by a raw image file through a `node:fs/promises` FileHandle.
 *
 * Requests are positional reads and writes, so any number may be in flight at once (libuv
 * runs them on its thread pool) and they may complete in any order. `flush()` is `fsync(2)`:
 * it completes after every write that completed before it was issued is on stable storage.
 * `info.flush` is true (the host page cache is a volatile write cache).
 *
 * **Errors:** {@link RawImageFile.open} throws {@link DiskImageError}; requests reject with
 * `BlockError` ("out-of-range", "misaligned", "read-only", "io" for a host I/O failure or a
 * file that shrank underneath us, "closed" after {@link close}).
 */
export class RawImageFile implements BlockDevice {
  readonly info: BlockDeviceInfo;
  /** The path the image was opened with. */
  readonly path: string;
  private readonly handle: FileHandle;
  private inFlight = 0;
  private closing: Promise<void> | undefined;
  private drained: (() => void) | undefined;

  private constructor(path: string, handle: FileHandle, info: BlockDeviceInfo) {
    this.path = path;
    this.handle = handle;
    this.info = info;
  }

  /**
   * Opens (or, with `create`, creates) the image at `path`.
   *
   * **Errors:** {@link DiskImageError} "not-found", "exists" (with `create`), "permission",
   * "not-a-file", "size" (empty, or not a whole number of sectors), "io". A failed create
   * leaves no file behind. `RangeError` for invalid options.
   */
  static async open(path: string, options: RawImageOptions = {}): Promise<RawImageFile> {
    const sectorSize = options.sectorSize ?? 512;
    if (!(SECTOR_SIZES as readonly number[]).includes(sectorSize)) {
      throw new RangeError(`sectorSize must be 512 or 4096, not ${sectorSize}`);
    }
    const readOnly = options.readOnly ?? false;
    const create = options.create;
    if (create !== undefined) {
      if (readOnly) throw new RangeError("create and readOnly cannot be combined");
      if (!Number.isSafeInteger(create) || create <= 0 || create % sectorSize !== 0) {
        throw new RangeError(`create size ${create} must be a positive multiple of ${sectorSize} bytes`);
      }
      return RawImageFile.create(path, create, sectorSize);
    }
    let handle: FileHandle;
    try {
      handle = await open(path, readOnly ? "r" : "r+");
    } catch (e) {
      throw openError(path, e);
    }
    try {
      const st = await handle.stat();
      if (!st.isFile()) throw new DiskImageError("not-a-file", path, "not a regular file");
      if (st.size === 0) throw new DiskImageError("size", path, "the image is empty");
      if (st.size % sectorSize !== 0) {
        throw new DiskImageError("size", path, `${st.size} bytes is not a whole number of ${sectorSize}-byte sectors`);
      }
      return new RawImageFile(path, handle, {
        sectorSize,
        sectors: st.size / sectorSize,
        readOnly,
        flush: true,
        discard: false,
      });
    } catch (e) {
      await handle.close().catch(() => {});
      throw e instanceof DiskImageError ? e : openError(path, e);
    }
  }

  private static async create(path: string, bytes: number, sectorSize: number): Promise<RawImageFile> {
    let handle: FileHandle;
    try {
      handle = await open(path, "wx+");
    } catch (e) {
      if (errnoCode(e) === "EEXIST") throw new DiskImageError("exists", path, "already exists (create makes a new image)", { cause: e });
      throw openError(path, e);
    }
    try {
      await handle.truncate(bytes);
      return new RawImageFile(path, handle, { sectorSize, sectors: bytes / sectorSize, readOnly: false, flush: true, discard: false });
    } catch (e) {
      // Nothing half-made: the file we created goes away again.
      await handle.close().catch(() => {});
      await unlink(path).catch(() => {});
      throw new DiskImageError("io", path, `cannot size the new image to ${bytes} bytes: ${String(e)}`, { cause: e });
    }
  }

  read(sector: number, dst: Uint8Array): Promise<void> {
    const err = checkBlockRequest(this.info, sector, dst.length, false) ?? this.closedError();
    if (err) return Promise.reject(err);
    return this.track(async () => {
      const base = sector * this.info.sectorSize;
      let done = 0;
      while (done < dst.length) {
        const { bytesRead } = await this.handle.read(dst, done, dst.length - done, base + done);
        if (bytesRead === 0) throw new BlockError("io", `${this.path}: unexpected end of file at byte ${base + done}`);
        done += bytesRead;
      }
    });
  }

  write(sector: number, src: Uint8Array): Promise<void> {
    const err = checkBlockRequest(this.info, sector, src.length, true) ?? this.closedError();
    if (err) return Promise.reject(err);
    return this.track(async () => {
      const base = sector * this.info.sectorSize;
      let done = 0;
      while (done < src.length) {
        const { bytesWritten } = await this.handle.write(src, done, src.length - done, base + done);
        done += bytesWritten;
      }
    });
  }

  /** Scatter-gather read: one positional `readv(2)` for consecutive sectors into `buffers`. */
  readv(sector: number, buffers: readonly Uint8Array[]): Promise<void> {
    const err = vectorError(this.info, sector, buffers, false) ?? this.closedError();
    if (err) return Promise.reject(err);
    return this.track(async () => {
      const base = sector * this.info.sectorSize;
      const { bytesRead } = await this.handle.readv(buffers as Uint8Array[], base);
      await finishVector(buffers, base, bytesRead, async (b, off, at) => {
        const { bytesRead: n } = await this.handle.read(b, off, b.length - off, at);
        if (n === 0) throw new BlockError("io", `${this.path}: unexpected end of file at byte ${at}`);
        return n;
      });
    });
  }

  /** Scatter-gather write: one positional `writev(2)` of `buffers` to consecutive sectors. */
  writev(sector: number, buffers: readonly Uint8Array[]): Promise<void> {
    const err = vectorError(this.info, sector, buffers, true) ?? this.closedError();
    if (err) return Promise.reject(err);
    return this.track(async () => {
      const base = sector * this.info.sectorSize;
      const { bytesWritten } = await this.handle.writev(buffers as Uint8Array[], base);
      await finishVector(buffers, base, bytesWritten, async (b, off, at) => (await this.handle.write(b, off, b.length - off, at)).bytesWritten);
    });
  }

  flush(): Promise<void> {
    const err = this.closedError();
    if (err) return Promise.reject(err);
    if (this.info.readOnly) return Promise.resolve();
    return this.track(() => this.handle.sync());
  }

  /** Number of requests issued and not yet completed. */
  get pending(): number {
    return this.inFlight;
  }

  /**
   * Waits for every request in flight, then closes the file (without an fsync: call
   * `flush()` first for durability). Later requests reject with "closed". Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.inFlight > 0) await new Promise<void>((resolve) => (this.drained = resolve));
      await this.handle.close();
    })();
    return this.closing;
  }

  private closedError(): BlockError | undefined {
    return this.closing !== undefined ? new BlockError("closed", `${this.path}: image closed`) : undefined;
  }

  private async track(op: () => Promise<void>): Promise<void> {
    this.inFlight++;
    try {
      await op();
    } catch (e) {
      if (e instanceof BlockError) throw e;
      throw new BlockError("io", `${this.path}: ${String(e)}`);
    } finally {
      if (--this.inFlight === 0) this.drained?.();
    }
  }
}

function openError(path: string, e: unknown): DiskImageError {
  switch (errnoCode(e)) {
    case "ENOENT":
      return new DiskImageError("not-found", path, "no such file", { cause: e });
    case "EACCES":
    case "EPERM":
    case "EROFS":
      return new DiskImageError("permission", path, `permission denied (${errnoCode(e)})`, { cause: e });
    case "EISDIR":
      return new DiskImageError("not-a-file", path, "is a directory", { cause: e });
    default:
      return new DiskImageError("io", path, String(e), { cause: e });
  }
}

/**
 * After a vectored transfer that moved only `done` bytes (a short readv/writev), moves the rest
 * piece by piece with `step(buffer, offsetInBuffer, filePosition)`, which returns the bytes moved.
 */
async function finishVector(
  buffers: readonly Uint8Array[],
  base: number,
  done: number,
  step: (b: Uint8Array, off: number, at: number) => Promise<number>,
): Promise<void> {
  let skip = done;
  let at = base + done;
  for (const b of buffers) {
    if (skip >= b.length) {
      skip -= b.length;
      continue;
    }
    let off = skip;
    skip = 0;
    while (off < b.length) {
      const n = await step(b, off, at);
      off += n;
      at += n;
    }
  }
}
