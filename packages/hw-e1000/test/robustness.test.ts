/**
 * Guest input never throws: random register writes, random descriptor rings and random frames
 * from the wire leave the model consistent (heads inside their rings, no exceptions).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Bench, R, RX_RING, TX_RING } from "./harness.ts";

/** Registers a hostile guest likes to poke. */
const HOT = [
  R.CTRL, R.EECD, R.EERD, R.MDIC, R.ICR, R.ITR, R.ICS, R.IMS, R.IMC, R.RCTL, R.TCTL, R.PBA,
  R.RDBAL, R.RDBAH, R.RDLEN, R.RDH, R.RDT, R.RDTR, R.RADV,
  R.TDBAL, R.TDBAH, R.TDLEN, R.TDH, R.TDT, R.TIDV, R.TADV, R.RXCSUM, R.RAL0, R.RAH0, R.VET,
] as const;

const op = fc.oneof(
  fc.record({ kind: fc.constant("reg" as const), off: fc.constantFrom(...HOT), value: fc.integer({ min: 0, max: 0xffffffff }) }),
  fc.record({ kind: fc.constant("any" as const), off: fc.integer({ min: 0, max: 0x1fffc }).map((o) => o & ~3), value: fc.integer({ min: 0, max: 0xffffffff }) }),
  fc.record({ kind: fc.constant("read" as const), off: fc.integer({ min: 0, max: 0x1fffc }).map((o) => o & ~3), value: fc.constant(0) }),
  fc.record({ kind: fc.constant("frame" as const), off: fc.integer({ min: 0, max: 20000 }), value: fc.integer({ min: 0, max: 0xffffffff }) }),
  fc.record({ kind: fc.constant("time" as const), off: fc.integer({ min: 0, max: 2_000_000 }), value: fc.constant(0) }),
  fc.record({ kind: fc.constant("io" as const), off: fc.integer({ min: 0, max: 63 }), value: fc.integer({ min: 0, max: 0xffffffff }) }),
);

describe("hostile guests and peers", () => {
  it("random register traffic, descriptor garbage and frames never throw", () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 80 }), fc.uint8Array({ minLength: 512, maxLength: 512 }), (ops, garbage) => {
        const b = new Bench({ memorySize: 0x200000 });
        // Rings full of garbage at their usual places; descriptors may point anywhere.
        b.memory.bytes.set(garbage, TX_RING);
        b.memory.bytes.set(garbage, RX_RING);
        b.setupTx(32);
        b.setupRx(0x2 | 0x8 | 0x10 | (1 << 15), 32, 31);
        b.memory.bytes.set(garbage, TX_RING);
        for (const o of ops) {
          switch (o.kind) {
            case "reg":
            case "any":
              b.wr(o.off, o.value);
              break;
            case "read":
              b.rd(o.off);
              break;
            case "frame": {
              const f = new Uint8Array(o.off);
              for (let i = 0; i < f.length; i++) f[i] = (o.value >>> (i % 4) * 8) & 0xff ^ i;
              b.wire.send(f);
              break;
            }
            case "time":
              b.clock.advanceBy(o.off);
              break;
            case "io":
              b.ioBus.write(0xc000 + (o.off & ~3), 4, o.value);
              b.ioBus.read(0xc000 + (o.off & ~3), 4);
              break;
          }
        }
        b.wr(R.TDT, (b.rd(R.TDT) + 1) & 0xffff);
        const rdlen = b.rd(R.RDLEN) / 16;
        const tdlen = b.rd(R.TDLEN) / 16;
        if (rdlen > 0 && b.rd(R.RDH) < rdlen && b.rd(R.RDT) < rdlen) expect(b.rd(R.RDH)).toBeLessThan(rdlen);
        if (tdlen > 0 && b.rd(R.TDH) < tdlen) expect(b.rd(R.TDH)).toBeLessThan(tdlen);
        const snap = JSON.parse(JSON.stringify(b.nic.saveState()));
        new Bench({ memorySize: 0x200000 }).nic.restoreState(snap);
      }),
      { numRuns: 150 },
    );
  });

  it("TSO and checksum contexts with nonsense offsets are survived", () => {
    fc.assert(
      fc.property(
        fc.record({
          ipcss: fc.integer({ min: 0, max: 255 }),
          ipcso: fc.integer({ min: 0, max: 255 }),
          ipcse: fc.integer({ min: 0, max: 0xffff }),
          tucss: fc.integer({ min: 0, max: 255 }),
          tucso: fc.integer({ min: 0, max: 255 }),
          tucse: fc.integer({ min: 0, max: 0xffff }),
          paylen: fc.integer({ min: 0, max: 0xfffff }),
          tucmd: fc.integer({ min: 0, max: 255 }),
          hdrlen: fc.integer({ min: 0, max: 255 }),
          mss: fc.integer({ min: 0, max: 0xffff }),
        }),
        fc.integer({ min: 0, max: 9000 }),
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: 0, max: 255 }),
        (ctx, len, dcmd, popts) => {
          const b = new Bench();
          b.setupTx();
          b.contextTx(0, ctx);
          b.dataTx(1, 0x40000, len, dcmd | 0x01, popts);
          expect(() => b.wr(R.TDT, 2)).not.toThrow();
          expect(b.rd(R.TDH)).toBe(2);
          // Whatever was sent fits a TSO burst of the given payload.
          const bytes = b.sent.reduce((n, f) => n + f.length, 0);
          expect(bytes).toBeLessThanOrEqual(len + Math.ceil(len / Math.max(1, ctx.mss)) * (ctx.hdrlen + 64) + 64);
        },
      ),
      { numRuns: 300 },
    );
  });
});
