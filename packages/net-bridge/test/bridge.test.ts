import { describe, expect, it } from "vitest";
import { VirtualClock, cable, type EthernetPort } from "@paravirt/vm-interfaces";
import { Bridge } from "../src/index.ts";

function frame(dst: number[], src: number[]): Uint8Array {
  const f = new Uint8Array(60);
  f.set(dst, 0);
  f.set(src, 6);
  f.set([0x88, 0xb5], 12);
  return f;
}
const A = [0, 0x16, 0x3e, 0, 0, 1];
const B = [0, 0x16, 0x3e, 0, 0, 2];
const C = [0, 0x16, 0x3e, 0, 0, 3];
const BCAST = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff];

/** A bridge with three ports, each a cable whose far end records what the bridge sends it. */
function setup() {
  const clock = new VirtualClock();
  const bridge = new Bridge({ clock, ageingNs: 1e9 });
  const hosts: { end: EthernetPort; got: Uint8Array[] }[] = [];
  for (const name of ["vif1", "vif2", "eth0"]) {
    const [bridgeSide, hostSide] = cable();
    const got: Uint8Array[] = [];
    hostSide.onReceive((f) => got.push(f));
    bridge.addPort(name, bridgeSide);
    hosts.push({ end: hostSide, got });
  }
  return { clock, bridge, hosts };
}

describe("Bridge (802.1D learning)", () => {
  it("floods an unknown destination to every other port, never back to the sender", () => {
    const { hosts } = setup();
    hosts[0]!.end.send(frame(B, A));
    expect(hosts.map((h) => h.got.length)).toEqual([0, 1, 1]);
  });

  it("forwards to the learned port only once the destination has been seen", () => {
    const { hosts, bridge } = setup();
    hosts[0]!.end.send(frame(BCAST, A)); // learn A on vif1
    hosts[1]!.end.send(frame(A, B)); // B on vif2 → only vif1
    expect(hosts.map((h) => h.got.length)).toEqual([1, 1, 1]);
    expect(bridge.table().get("00:16:3e:00:00:01")).toBe("vif1");
    hosts[0]!.end.send(frame(B, A)); // now known → only vif2
    expect(hosts.map((h) => h.got.length)).toEqual([1, 2, 1]);
  });

  it("keeps domU-to-domU traffic off the physical port", () => {
    const { hosts, bridge } = setup();
    hosts[0]!.end.send(frame(BCAST, A));
    hosts[1]!.end.send(frame(BCAST, B));
    const before = bridge.stats("eth0")!.txFrames;
    for (let i = 0; i < 10; i++) {
      hosts[0]!.end.send(frame(B, A));
      hosts[1]!.end.send(frame(A, B));
    }
    expect(bridge.stats("eth0")!.txFrames).toBe(before);
  });

  it("forgets an address after the ageing time and floods again", () => {
    const { hosts, clock, bridge } = setup();
    hosts[2]!.end.send(frame(BCAST, C));
    clock.advanceBy(2e9);
    expect(bridge.table().has("00:16:3e:00:00:03")).toBe(false);
    hosts[0]!.end.send(frame(C, A));
    expect(hosts[1]!.got.length).toBe(2); // flooded (the broadcast and this one)
  });

  it("moves an address that reappears on another port", () => {
    const { hosts, bridge } = setup();
    hosts[0]!.end.send(frame(BCAST, A));
    hosts[2]!.end.send(frame(BCAST, A));
    expect(bridge.table().get("00:16:3e:00:00:01")).toBe("eth0");
  });

  it("does not learn group source addresses, and drops runts", () => {
    const { hosts, bridge } = setup();
    hosts[0]!.end.send(frame(B, [1, 0, 0x5e, 0, 0, 1]));
    expect(bridge.table().size).toBe(0);
    hosts[0]!.end.send(new Uint8Array(10));
    expect(bridge.stats("vif1")!.rxFrames).toBe(1);
  });

  it("follows a station that moves, and floods to an address whose port was removed, between frames of one stream", () => {
    const { hosts, bridge } = setup();
    hosts[1]!.end.send(frame(BCAST, B)); // B on vif2
    hosts[0]!.end.send(frame(B, A)); // A → B: vif2 only
    hosts[2]!.end.send(frame(BCAST, B)); // B moves to eth0
    hosts[0]!.end.send(frame(B, A)); // the same stream now goes to eth0
    expect(hosts.map((h) => h.got.length)).toEqual([2, 2, 2]);
    bridge.removePort("eth0"); // B is forgotten with its port
    hosts[0]!.end.send(frame(B, A)); // unknown again: flooded to the ports left
    expect(hosts.map((h) => h.got.length)).toEqual([2, 3, 2]);
    expect(bridge.stats("vif1")!.flooded).toBe(1);
  });

  it("floods to an address evicted from a full table, between frames of one stream", () => {
    const clock = new VirtualClock();
    const bridge = new Bridge({ clock, maxEntries: 2 });
    const got: number[] = [0, 0, 0];
    const ends = ["p0", "p1", "p2"].map((name, i) => {
      const [side, host] = cable();
      host.onReceive(() => got[i]!++);
      bridge.addPort(name, side);
      return host;
    });
    ends[1]!.send(frame(BCAST, B)); // B on p1
    clock.advanceBy(10);
    ends[0]!.send(frame(B, A)); // A on p0; A → B: p1 only
    clock.advanceBy(10);
    ends[2]!.send(frame(BCAST, C)); // the table is full: B, the oldest, is evicted for C
    expect([...bridge.table().keys()].sort()).toEqual(["00:16:3e:00:00:01", "00:16:3e:00:00:03"]);
    const before = [...got];
    ends[0]!.send(frame(B, A));
    expect(got.map((n, i) => n - before[i]!)).toEqual([0, 1, 1]); // flooded
  });

  it("caps the table under a flood of random sources", () => {
    const clock = new VirtualClock();
    const bridge = new Bridge({ clock, maxEntries: 16 });
    const [a, hostA] = cable();
    bridge.addPort("p", a);
    for (let i = 0; i < 1000; i++) hostA.send(frame(BCAST, [0, 1, 2, 3, i >> 8, i & 0xff]));
    expect(bridge.table().size).toBe(16);
  });
});
