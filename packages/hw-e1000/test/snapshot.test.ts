import { describe, expect, it } from "vitest";
import { Bench, MAC, R, TX_BUFS, buildPacket } from "./harness.ts";

const EN = 2,
  SECRC = 1 << 26;

function frame(n: number): Uint8Array {
  const f = new Uint8Array(70);
  f.set(MAC, 0);
  f[12] = 0x88;
  f[13] = 0xb5;
  f[20] = n;
  return f;
}

describe("saveState / restoreState", () => {
  it("round-trips through JSON mid-stream: rings, pending timers, held frames, EEPROM and PHY", () => {
    const a = new Bench();
    a.setupTx();
    a.setupRx(EN | SECRC, 8, 1);
    a.wr(R.IMS, 0x80 | 0x4);
    a.wr(R.RDTR, 50);
    a.wr(0x5200 + 12, 0xdeadbeef);
    a.wire.send(frame(1)); // stored; RXT0 pending on the RDTR timer
    a.wire.send(frame(2)); // held: no descriptors
    const state = JSON.parse(JSON.stringify(a.nic.saveState()));

    const b = new Bench();
    b.nic.restoreState(state);
    expect(b.rd(R.RDH)).toBe(1);
    expect(b.rd(0x5200 + 12)).toBe(0xdeadbeef);
    expect(b.rd(R.IMS)).toBe(0x84);
    expect(b.irq.level).toBe(false);
    b.clock.advanceBy(51_200);
    expect(b.irq.level).toBe(true); // the restored RDTR timer fired
    b.wr(R.RDT, 3);
    expect(b.rd(R.RDH)).toBe(2); // the held frame was delivered
    expect(b.rxDesc(1).length).toBe(70);

  });

  it("restores the transmit engine's context", () => {
    const a = new Bench();
    a.setupTx();
    const f = buildPacket({ proto: "tcp", payload: new Uint8Array(40) });
    a.contextTx(0, { ipcss: 14, ipcso: 24, ipcse: 33, tucss: 34, tucso: 50, tucse: 0, paylen: 0, tucmd: 3, hdrlen: 0, mss: 0 });
    a.wr(R.TDT, 1);
    const state = JSON.parse(JSON.stringify(a.nic.saveState()));
    const b = new Bench();
    b.nic.restoreState(state);
    b.memory.write(TX_BUFS, f);
    b.dataTx(1, TX_BUFS, f.length, 0x01 | 0x08, 0x03);
    b.wr(R.TDT, 2);
    expect(b.sent).toHaveLength(1);
    // IP checksum was inserted at offset 24 with the restored context.
    expect((b.sent[0]![24]! << 8) | b.sent[0]![25]!).not.toBe(0);
  });

  it("refuses a malformed state", () => {
    const b = new Bench();
    expect(() => b.nic.restoreState({} as never)).toThrow();
  });
});

describe("loopback", () => {
  it("PHY loopback sends transmitted frames to the receiver, not the wire", () => {
    const b = new Bench();
    b.setupTx();
    b.setupRx(EN | SECRC);
    b.wr(0x20, (1 << 26) | (1 << 21) | (0 << 16) | 0x1140 | 0x4000); // MDIC write BMCR.LOOPBACK
    const f = frame(9);
    b.memory.write(TX_BUFS, f);
    b.legacyTx(0, TX_BUFS, f.length, 0x09);
    b.wr(R.TDT, 1);
    expect(b.sent).toHaveLength(0);
    expect(b.rd(R.RDH)).toBe(1);
    expect(b.rxDesc(0).length).toBe(70);
  });
});
