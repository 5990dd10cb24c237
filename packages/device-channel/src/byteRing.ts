/**
 * Byte-stream rings with free-running 32-bit indexes, as used by the console
 * [io/console.h] and xenstore [io/xs_wire.h] pages: data at `MASK(idx)`, the producer
 * advances `prod`, the consumer `cons`; `prod - cons` (mod 2^32) bytes are waiting.
 */

/** Where one direction of a byte ring lives inside its page. */
export interface ByteRingLayout {
  /** Offset of the data array. */
  readonly data: number;
  /** Size of the data array, a power of two. */
  readonly size: number;
  /** Offset of the u32 consumer index. */
  readonly cons: number;
  /** Offset of the u32 producer index. */
  readonly prod: number;
}

/**
 * One direction of a byte ring over a page. Both ends use the same object shape; each side
 * only writes its own index. A peer whose indexes claim more than `size` bytes in flight is
 * reported as `corrupt` and nothing is read or written.
 */
export class ByteRing {
  private readonly dv: DataView;
  private readonly bytes: Uint8Array;
  readonly layout: ByteRingLayout;

  constructor(page: Uint8Array, layout: ByteRingLayout) {
    if ((layout.size & (layout.size - 1)) !== 0) throw new RangeError("byte ring size must be a power of two");
    this.bytes = page;
    this.dv = new DataView(page.buffer, page.byteOffset, page.byteLength);
    this.layout = layout;
  }

  get prod(): number {
    return this.dv.getUint32(this.layout.prod, true);
  }
  get cons(): number {
    return this.dv.getUint32(this.layout.cons, true);
  }

  /** Bytes waiting to be consumed; -1 when the indexes are inconsistent (corrupt). */
  available(): number {
    const n = (this.prod - this.cons) >>> 0;
    return n > this.layout.size ? -1 : n;
  }

  /** Room for the producer; -1 when corrupt. */
  space(): number {
    const n = this.available();
    return n < 0 ? -1 : this.layout.size - n;
  }

  /** Whether the indexes are inconsistent (`prod - cons > size`). */
  get corrupt(): boolean {
    return this.available() < 0;
  }

  /** Producer: copies as much of `src` as fits, publishes it, returns the count (0 when corrupt). */
  write(src: Uint8Array): number {
    const space = this.space();
    if (space <= 0) return 0;
    const n = Math.min(space, src.length);
    const { data, size } = this.layout;
    let prod = this.prod;
    for (let i = 0; i < n; i++) {
      this.bytes[data + (prod & (size - 1))] = src[i]!;
      prod = (prod + 1) >>> 0;
    }
    this.dv.setUint32(this.layout.prod, prod, true);
    return n;
  }

  /** Consumer: copies up to `dst.length` waiting bytes into `dst`, frees them, returns the count (0 when corrupt). */
  read(dst: Uint8Array): number {
    const avail = this.available();
    if (avail <= 0) return 0;
    const n = Math.min(avail, dst.length);
    const { data, size } = this.layout;
    let cons = this.cons;
    for (let i = 0; i < n; i++) {
      dst[i] = this.bytes[data + (cons & (size - 1))]!;
      cons = (cons + 1) >>> 0;
    }
    this.dv.setUint32(this.layout.cons, cons, true);
    return n;
  }

  /** Consumer: reads every waiting byte. */
  drain(): Uint8Array {
    const n = Math.max(0, this.available());
    const out = new Uint8Array(n);
    this.read(out);
    return out;
  }
}
