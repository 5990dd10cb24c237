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
  /**
   * Bytes to read ahead of a sequential reader (default 0: none). After a read that continues
   * the previous one, the next `readAhead` bytes are read from the file in the background, so a
   * following sequential read finds its data read already (host I/O overlapped with whatever
   * the caller does meanwhile). A write drops what it overlaps; nothing is read ahead over a
   * write in flight.
   */
  readAhead?: number;
}

/** Unit of reading ahead: at least one request, at least this. */
const READ_AHEAD_CHUNK = 64 * 1024;

/** A background read of `length` bytes at file position `start`. */
interface AheadRead {
  readonly start: number;
  readonly data: Uint8Array;
  /** Resolves with the bytes read (fewer at the end of the file), or -1 when the read failed. */
  readonly done: Promise<number>;
  /** False once a write overlapped it: its bytes may be stale. */
  valid: boolean;
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
  private readonly readAheadBytes: number;
  /** Reads started ahead of a sequential reader, in file order. */
  private ahead: AheadRead[] = [];
  /** Every background read not settled yet (close waits for them). */
  private readonly aheadInFlight = new Set<Promise<number>>();
  /** File position right after the last read requested: a read starting there is sequential. */
  private nextSequential = -1;
  /** Byte ranges of writes in flight. */
  private readonly writing = new Set<{ start: number; end: number }>();
  /** Buffers of reads ahead that are done with, reused (a fresh 64 KiB buffer per read costs garbage collections). */
  private spare: Uint8Array[] = [];
  /** Reads served from data read ahead. */
  readAheadHits = 0;

  private constructor(path: string, handle: FileHandle, info: BlockDeviceInfo, readAhead: number) {
    this.path = path;
    this.handle = handle;
    this.info = info;
    this.readAheadBytes = readAhead;
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
    const readAhead = options.readAhead ?? 0;
    if (!Number.isSafeInteger(readAhead) || readAhead < 0) throw new RangeError(`readAhead ${readAhead} must be a whole number of bytes`);
    const create = options.create;
    if (create !== undefined) {
      if (readOnly) throw new RangeError("create and readOnly cannot be combined");
      if (!Number.isSafeInteger(create) || create <= 0 || create % sectorSize !== 0) {
        throw new RangeError(`create size ${create} must be a positive multiple of ${sectorSize} bytes`);
      }
      return RawImageFile.create(path, create, sectorSize, readAhead);
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
      }, readAhead);
    } catch (e) {
      await handle.close().catch(() => {});
      throw e instanceof DiskImageError ? e : openError(path, e);
    }
  }

  private static async create(path: string, bytes: number, sectorSize: number, readAhead: number): Promise<RawImageFile> {
    let handle: FileHandle;
    try {
      handle = await open(path, "wx+");
    } catch (e) {
      if (errnoCode(e) === "EEXIST") throw new DiskImageError("exists", path, "already exists (create makes a new image)", { cause: e });
      throw openError(path, e);
    }
    try {
      await handle.truncate(bytes);
      return new RawImageFile(path, handle, { sectorSize, sectors: bytes / sectorSize, readOnly: false, flush: true, discard: false }, readAhead);
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
    const base = sector * this.info.sectorSize;
    const early = this.takeAhead(base, dst.length);
    return this.track(async () => {
      if (early !== undefined && (await this.fromAhead(early, base, [dst]))) return;
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
    const base = sector * this.info.sectorSize;
    const range = this.startWrite(base, src.length);
    return this.track(async () => {
      try {
        let done = 0;
        while (done < src.length) {
          const { bytesWritten } = await this.handle.write(src, done, src.length - done, base + done);
          done += bytesWritten;
        }
      } finally {
        this.writing.delete(range);
      }
    });
  }

  /** Scatter-gather read: one positional `readv(2)` for consecutive sectors into `buffers`. */
  readv(sector: number, buffers: readonly Uint8Array[]): Promise<void> {
    const err = vectorError(this.info, sector, buffers, false) ?? this.closedError();
    if (err) return Promise.reject(err);
    const base = sector * this.info.sectorSize;
    let total = 0;
    for (const b of buffers) total += b.length;
    const early = this.takeAhead(base, total);
    return this.track(async () => {
      if (early !== undefined && (await this.fromAhead(early, base, buffers))) return;
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
    const base = sector * this.info.sectorSize;
    let total = 0;
    for (const b of buffers) total += b.length;
    const range = this.startWrite(base, total);
    return this.track(async () => {
      try {
        const { bytesWritten } = await this.handle.writev(buffers as Uint8Array[], base);
        await finishVector(buffers, base, bytesWritten, async (b, off, at) => (await this.handle.write(b, off, b.length - off, at)).bytesWritten);
      } finally {
        this.writing.delete(range);
      }
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
      this.ahead = [];
      await Promise.allSettled([...this.aheadInFlight]);
      await this.handle.close();
    })();
    return this.closing;
  }

  /**
   * Called as a read of `length` bytes at `base` is issued: the background read holding all of
   * it, if any (taken off the list), and, when the read continues the previous one, background
   * reads of the next `readAhead` bytes. A read elsewhere drops what was read ahead.
   */
  private takeAhead(base: number, length: number): AheadRead | undefined {
    if (this.readAheadBytes === 0) return undefined;
    const sequential = base === this.nextSequential;
    this.nextSequential = base + length;
    let found: AheadRead | undefined;
    const keep: AheadRead[] = [];
    for (const a of this.ahead) {
      if (found === undefined && a.start <= base && base + length <= a.start + a.data.length) found = a;
      else if (a.start + a.data.length > base + length) keep.push(a);
    }
    const dropped = sequential || found !== undefined ? this.ahead.filter((a) => a !== found && !keep.includes(a)) : this.ahead.filter((a) => a !== found);
    this.ahead = sequential || found !== undefined ? keep : [];
    for (const a of dropped) this.recycle(a);
    if (sequential || found !== undefined) this.readAheadFrom(base + length, Math.max(length, READ_AHEAD_CHUNK));
    return found;
  }

  /** Gives a read ahead's buffer back for reuse once its read has settled. */
  private recycle(a: AheadRead): void {
    void a.done.then(() => {
      if (a.data.length === READ_AHEAD_CHUNK && this.spare.length < 16) this.spare.push(a.data);
    });
  }

  /** Starts background reads so that `[from, from + readAhead)` is covered, in chunks of `chunk`. */
  private readAheadFrom(from: number, chunk: number): void {
    const end = Math.min(from + this.readAheadBytes, this.info.sectors * this.info.sectorSize);
    let at = from;
    for (const a of this.ahead) if (a.start <= at && at < a.start + a.data.length) at = a.start + a.data.length;
    while (at < end) {
      const length = Math.min(chunk, end - at);
      // Never over a write in flight: the read could see the file before or after it.
      for (const w of this.writing) if (w.start < at + length && at < w.end) return;
      const data = (length === READ_AHEAD_CHUNK ? this.spare.pop() : undefined) ?? new Uint8Array(length);
      const start = at;
      const done = (async () => {
        let got = 0;
        while (got < length) {
          const { bytesRead } = await this.handle.read(data, got, length - got, start + got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        return got;
      })().catch(() => -1);
      this.aheadInFlight.add(done);
      void done.then(() => this.aheadInFlight.delete(done));
      this.ahead.push({ start, data, done, valid: true });
      at += length;
    }
  }

  /** Copies `[base, base + total of buffers)` out of `a` once it is read; false when it cannot serve. */
  private async fromAhead(a: AheadRead, base: number, buffers: readonly Uint8Array[]): Promise<boolean> {
    const got = await a.done;
    let total = 0;
    for (const b of buffers) total += b.length;
    if (!a.valid || got < base - a.start + total) {
      this.recycle(a);
      return false;
    }
    let at = base - a.start;
    for (const b of buffers) {
      b.set(a.data.subarray(at, at + b.length));
      at += b.length;
    }
    this.recycle(a);
    this.readAheadHits++;
    return true;
  }

  /** A write of `[base, base + length)` is issued: what was read ahead over it is dropped. */
  private startWrite(base: number, length: number): { start: number; end: number } {
    const range = { start: base, end: base + length };
    if (this.ahead.length > 0) {
      const keep: AheadRead[] = [];
      for (const a of this.ahead) {
        if (a.start < range.end && base < a.start + a.data.length) {
          a.valid = false;
          this.recycle(a);
        } else keep.push(a);
      }
      this.ahead = keep;
    }
    this.writing.add(range);
    return range;
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
