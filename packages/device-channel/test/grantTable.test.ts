import { describe, expect, it } from "vitest";
import { GRANT_ENTRY_V1, GTF, readGrantEntryV1, writeGrantEntryV1 } from "../src/index.ts";

describe("grant_entry_v1", () => {
  it("writes domid and frame before flags, and reads back the 8-byte entry", () => {
    const table = new DataView(new ArrayBuffer(4096));
    const order: number[] = [];
    const spy = new Proxy(table, {
      get(t, p) {
        const f = Reflect.get(t, p) as unknown;
        if (typeof f !== "function") return f;
        return (off: number, ...rest: unknown[]) => {
          if (String(p).startsWith("set")) order.push(off);
          return (f as (...a: unknown[]) => unknown).call(t, off, ...rest);
        };
      },
    });
    writeGrantEntryV1(spy, 3, { flags: GTF.permit_access | GTF.readonly, domid: 1, frame: 0x12345 });
    expect(order[order.length - 1]).toBe(3 * GRANT_ENTRY_V1.SIZE + GRANT_ENTRY_V1.FLAGS);
    expect(readGrantEntryV1(table, 3)).toEqual({ flags: 5, domid: 1, frame: 0x12345 });
    expect(Array.from(new Uint8Array(table.buffer, 24, 8))).toEqual([5, 0, 1, 0, 0x45, 0x23, 0x01, 0]);
  });
});
