/**
 * Port-I/O scripts run twice: by boot.asm on QEMU's real PIIX IDE, and by {@link runOnModel}
 * against this package's model, so the two byte streams they read back can be compared.
 */
import type { IoBus } from "@paravirt/vm-interfaces";
import type { FlatMemory, RecordingIrqLine } from "@paravirt/vm-interfaces/testing";

const OP = { END: 0x00, OUTB: 0x01, OUTW: 0x02, OUTL: 0x03, INB: 0x11, INW: 0x12, INL: 0x13, INW_N: 0x14, OUTW_N: 0x15, INL_N: 0x16, POLL: 0x20, IRR: 0x30, MEMW: 0x40, MEMR: 0x41 } as const;

/** One value the script reads back, with the name a mismatch is reported under. */
export interface Record {
  readonly label: string;
  readonly bytes: number;
}

type Step =
  | { op: "out"; size: 1 | 2 | 4; port: number; value: number }
  | { op: "in"; size: 1 | 2 | 4; port: number; count: number }
  | { op: "outw_n"; port: number; words: Uint16Array }
  | { op: "poll"; port: number; mask: number; value: number }
  | { op: "irr" }
  | { op: "memw"; addr: number; data: Uint8Array }
  | { op: "memr"; addr: number; length: number };

export class Script {
  readonly steps: Step[] = [];
  readonly records: Record[] = [];
  private readonly bytes: number[] = [];

  private u16(v: number): void {
    this.bytes.push(v & 0xff, (v >>> 8) & 0xff);
  }
  private u32(v: number): void {
    this.u16(v & 0xffff);
    this.u16(v >>> 16);
  }
  outb(port: number, value: number): this {
    this.bytes.push(OP.OUTB);
    this.u16(port);
    this.bytes.push(value & 0xff);
    this.steps.push({ op: "out", size: 1, port, value });
    return this;
  }
  outw(port: number, value: number): this {
    this.bytes.push(OP.OUTW);
    this.u16(port);
    this.u16(value);
    this.steps.push({ op: "out", size: 2, port, value });
    return this;
  }
  outl(port: number, value: number): this {
    this.bytes.push(OP.OUTL);
    this.u16(port);
    this.u32(value);
    this.steps.push({ op: "out", size: 4, port, value });
    return this;
  }
  inb(port: number, label: string): this {
    this.bytes.push(OP.INB);
    this.u16(port);
    this.steps.push({ op: "in", size: 1, port, count: 1 });
    this.records.push({ label, bytes: 1 });
    return this;
  }
  inw(port: number, label: string): this {
    this.bytes.push(OP.INW);
    this.u16(port);
    this.steps.push({ op: "in", size: 2, port, count: 1 });
    this.records.push({ label, bytes: 2 });
    return this;
  }
  inl(port: number, label: string): this {
    this.bytes.push(OP.INL);
    this.u16(port);
    this.steps.push({ op: "in", size: 4, port, count: 1 });
    this.records.push({ label, bytes: 4 });
    return this;
  }
  /** `count` 16-bit reads, recorded as `label[i]`. */
  inwN(port: number, count: number, label: string): this {
    this.bytes.push(OP.INW_N);
    this.u16(port);
    this.u16(count);
    this.steps.push({ op: "in", size: 2, port, count });
    for (let i = 0; i < count; i++) this.records.push({ label: `${label}[${i}]`, bytes: 2 });
    return this;
  }
  inlN(port: number, count: number, label: string): this {
    this.bytes.push(OP.INL_N);
    this.u16(port);
    this.u16(count);
    this.steps.push({ op: "in", size: 4, port, count });
    for (let i = 0; i < count; i++) this.records.push({ label: `${label}[${i}]`, bytes: 4 });
    return this;
  }
  outwN(port: number, data: Uint8Array): this {
    const words = new Uint16Array(data.length / 2);
    for (let i = 0; i < words.length; i++) words[i] = data[2 * i]! | (data[2 * i + 1]! << 8);
    this.bytes.push(OP.OUTW_N);
    this.u16(port);
    this.u16(words.length);
    for (const w of words) this.u16(w);
    this.steps.push({ op: "outw_n", port, words });
    return this;
  }
  /** Polls `port` until `(v & mask) === value`; records the final value. */
  poll(port: number, mask: number, value: number, label: string): this {
    this.bytes.push(OP.POLL);
    this.u16(port);
    this.bytes.push(mask, value);
    this.steps.push({ op: "poll", port, mask, value });
    this.records.push({ label, bytes: 1 });
    return this;
  }
  /** Records the levels of IRQ14 (0x40) and IRQ15 (0x80). */
  irq(label: string): this {
    this.bytes.push(OP.IRR);
    this.steps.push({ op: "irr" });
    this.records.push({ label, bytes: 1 });
    return this;
  }
  memw(addr: number, data: Uint8Array): this {
    this.bytes.push(OP.MEMW);
    this.u32(addr);
    this.u16(data.length);
    for (const b of data) this.bytes.push(b);
    this.steps.push({ op: "memw", addr, data });
    return this;
  }
  memr(addr: number, length: number, label: string): this {
    this.bytes.push(OP.MEMR);
    this.u32(addr);
    this.u16(length);
    this.steps.push({ op: "memr", addr, length });
    this.records.push({ label, bytes: length });
    return this;
  }
  /** The script as boot.asm reads it (terminated). */
  encode(): Uint8Array {
    return Uint8Array.from([...this.bytes, OP.END]);
  }
}

/** What {@link runOnModel} drives. */
export interface ModelPorts {
  readonly io: IoBus;
  readonly mem: FlatMemory;
  readonly irq14: RecordingIrqLine;
  readonly irq15: RecordingIrqLine;
  /** Moves the model forward (timers, block I/O) a little. */
  step(): Promise<void>;
}

/** Runs `script` on the model; returns the bytes boot.asm would have written to port 0xE9. */
export async function runOnModel(script: Script, m: ModelPorts): Promise<Uint8Array> {
  const out: number[] = [];
  const emit = (v: number, size: number) => {
    for (let i = 0; i < size; i++) out.push((v >>> (8 * i)) & 0xff);
  };
  for (const s of script.steps) {
    switch (s.op) {
      case "out":
        m.io.write(s.port, s.size, s.value);
        break;
      case "in":
        for (let i = 0; i < s.count; i++) emit(m.io.read(s.port, s.size), s.size);
        break;
      case "outw_n":
        for (const w of s.words) m.io.write(s.port, 2, w);
        break;
      case "poll": {
        let v = m.io.read(s.port, 1);
        for (let i = 0; i < 100_000 && (v & s.mask) !== s.value; i++) {
          await m.step();
          v = m.io.read(s.port, 1);
        }
        emit(v, 1);
        break;
      }
      case "irr":
        emit((m.irq14.level ? 0x40 : 0) | (m.irq15.level ? 0x80 : 0), 1);
        break;
      case "memw":
        m.mem.write(s.addr, s.data);
        break;
      case "memr":
        for (let i = 0; i < s.length; i++) out.push(m.mem.readU8(s.addr + i));
        break;
    }
  }
  return Uint8Array.from(out);
}

/** Splits a byte stream into the script's records, as numbers (or byte arrays when longer than 4). */
export function decode(script: Script, bytes: Uint8Array): { label: string; value: number | string }[] {
  const res: { label: string; value: number | string }[] = [];
  let at = 0;
  for (const r of script.records) {
    if (at + r.bytes > bytes.length) {
      res.push({ label: r.label, value: "missing" });
      continue;
    }
    if (r.bytes <= 4) {
      let v = 0;
      for (let i = r.bytes - 1; i >= 0; i--) v = v * 256 + bytes[at + i]!;
      res.push({ label: r.label, value: v });
    } else {
      res.push({ label: r.label, value: Buffer.from(bytes.subarray(at, at + r.bytes)).toString("hex") });
    }
    at += r.bytes;
  }
  return res;
}
