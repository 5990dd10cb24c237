import { PAGE_SIZE, type Page, type PageAllocator } from "@paravirt/vm-interfaces";

/** First pseudo-physical frame handed out (so frame 0 never names a page by accident). */
export const FIRST_FRAME = 0x100;

/**
 * One domain's memory: `pages` frames of 4 KiB in one ArrayBuffer, so consecutive frames are
 * adjacent bytes (a multi-page ring allocated in one go can be viewed as one buffer). Frames
 * are pseudo-physical numbers from {@link FIRST_FRAME}; each has a machine frame `mfnBase + i`.
 */
export class DomainMemory implements PageAllocator {
  readonly buffer: ArrayBuffer;
  readonly frames: number;
  readonly mfnBase: number;
  private readonly used: Uint8Array;
  private readonly pageObjects = new Map<number, Page>();
  private next = 0;
  private inUse = 0;

  constructor(frames: number, mfnBase: number) {
    this.buffer = new ArrayBuffer(frames * PAGE_SIZE);
    this.frames = frames;
    this.mfnBase = mfnBase;
    this.used = new Uint8Array(frames);
  }

  /** Pages currently allocated. */
  get allocated(): number {
    return this.inUse;
  }

  /** The lowest free frame at or after the last one handed out (wrapping). **Errors:** RangeError when memory is full. */
  allocPage(): Page {
    for (let k = 0; k < this.frames; k++) {
      const i = (this.next + k) % this.frames;
      if (this.used[i]) continue;
      this.used[i] = 1;
      this.inUse++;
      this.next = (i + 1) % this.frames;
      const bytes = new Uint8Array(this.buffer, i * PAGE_SIZE, PAGE_SIZE);
      bytes.fill(0);
      const page: Page = { frame: FIRST_FRAME + i, bytes };
      this.pageObjects.set(page.frame, page);
      return page;
    }
    throw new RangeError("domain memory exhausted");
  }

  /** **Errors:** RangeError for a page that is not allocated (host misuse). */
  freePage(page: Page): void {
    const i = page.frame - FIRST_FRAME;
    if (!Number.isInteger(i) || i < 0 || i >= this.frames || !this.used[i]) throw new RangeError(`frame ${page.frame} is not allocated`);
    this.used[i] = 0;
    this.inUse--;
    this.pageObjects.delete(page.frame);
  }

  /** The live bytes of an allocated frame, or undefined. */
  pageBytes(frame: number): Uint8Array | undefined {
    const i = frame - FIRST_FRAME;
    if (!Number.isInteger(i) || i < 0 || i >= this.frames || !this.used[i]) return undefined;
    return new Uint8Array(this.buffer, i * PAGE_SIZE, PAGE_SIZE);
  }

  /**
   * The frame of `bytes` when it is exactly one allocated page of this memory (page-sized and
   * page-aligned), else undefined: what a frontend needs to grant a caller's buffer directly.
   */
  frameOf(bytes: Uint8Array): number | undefined {
    if (bytes.buffer !== this.buffer || bytes.byteLength !== PAGE_SIZE || bytes.byteOffset % PAGE_SIZE !== 0) return undefined;
    const i = bytes.byteOffset / PAGE_SIZE;
    return this.used[i] ? FIRST_FRAME + i : undefined;
  }

  /** Machine address of an allocated frame. */
  machineAddress(frame: number): number {
    return (this.mfnBase + (frame - FIRST_FRAME)) * PAGE_SIZE;
  }
}
