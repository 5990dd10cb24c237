import { createConnection, createServer } from "node:net";
import { describe, expect, it } from "vitest";
import { DgramBackend, StreamBackend, parseIpv4Packet, udpChecksumOk } from "../src/index.ts";
import { dhcpFromFrame, dhcpOffer, qemu, startQemu, stopQemu } from "./qemu.ts";

function frame(n: number, len = 60): Uint8Array {
  const f = new Uint8Array(len);
  f.fill(n);
  f[12] = 0x88;
  f[13] = 0xb5;
  return f;
}

function nextFrame(port: { onReceive(h: (f: Uint8Array) => void): void }, count = 1, timeoutMs = 5000): Promise<Uint8Array[]> {
  return new Promise((resolve, reject) => {
    const got: Uint8Array[] = [];
    const t = setTimeout(() => reject(new Error(`timed out after ${got.length} frames`)), timeoutMs);
    port.onReceive((f) => {
      got.push(f);
      if (got.length === count) {
        clearTimeout(t);
        resolve(got);
      }
    });
  });
}

describe("DgramBackend", () => {
  it("carries one frame per datagram between two backends on 127.0.0.1", async () => {
    const a = await DgramBackend.open();
    const b = await DgramBackend.open({ remote: a.local });
    a.setRemote(b.local);
    try {
      expect(a.local.host).toBe("127.0.0.1");
      const atB = nextFrame(b, 2);
      a.send(frame(1));
      a.send(frame(2, 1514));
      const got = await atB;
      expect(got[0]).toEqual(frame(1));
      expect(got[1]).toEqual(frame(2, 1514));
      const atA = nextFrame(a);
      b.send(frame(3, 9000));
      expect((await atA)[0]).toEqual(frame(3, 9000));
      expect(a.counters).toEqual({ sent: 2, received: 1, dropped: 0 });
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("drops frames without a peer and datagrams from strangers", async () => {
    const a = await DgramBackend.open();
    const b = await DgramBackend.open();
    const stranger = await DgramBackend.open({ remote: a.local });
    try {
      a.send(frame(1));
      expect(a.counters.dropped).toBe(1);
      a.setRemote(b.local);
      const seen: Uint8Array[] = [];
      a.onReceive((f) => seen.push(f));
      stranger.send(frame(9));
      b.setRemote(a.local);
      const ok = nextFrame(a);
      b.send(frame(4));
      expect((await ok)[0]).toEqual(frame(4));
      expect(seen).toHaveLength(0);
    } finally {
      await Promise.all([a.close(), b.close(), stranger.close()]);
    }
  });
});

describe("StreamBackend", () => {
  it("exchanges length-prefixed frames between listener and client", async () => {
    const server = await StreamBackend.listen();
    const client = await StreamBackend.connect(server.address!);
    try {
      await server.whenConnected();
      const atServer = nextFrame(server, 3);
      client.send(frame(1));
      client.send(frame(2, 1514));
      client.send(frame(3, 65000));
      const got = await atServer;
      expect(got.map((f) => f.length)).toEqual([60, 1514, 65000]);
      expect(got[2]).toEqual(frame(3, 65000));
      const atClient = nextFrame(client);
      server.send(frame(4));
      expect((await atClient)[0]).toEqual(frame(4));
    } finally {
      await client.close();
      await server.close();
    }
  });

  it("reassembles frames split at any byte and uses 4-byte big-endian lengths", async () => {
    const server = await StreamBackend.listen();
    const raw = createConnection(server.address!);
    try {
      await server.whenConnected();
      const frames = [frame(7, 60), frame(8, 300), frame(9, 61)];
      const wire: number[] = [];
      for (const f of frames) wire.push(0, 0, f.length >> 8, f.length & 0xff, ...f);
      const got = nextFrame(server, 3);
      for (let i = 0; i < wire.length; i += 7) raw.write(Uint8Array.from(wire.slice(i, i + 7)));
      expect(await got).toEqual(frames);
    } finally {
      raw.destroy();
      await server.close();
    }
  });

  it("disconnects a peer that announces an impossible length, and reports link changes", async () => {
    const server = await StreamBackend.listen();
    const changes: boolean[] = [];
    server.onLinkChange((up) => changes.push(up));
    const raw = createConnection(server.address!);
    try {
      await server.whenConnected();
      const closed = new Promise<void>((resolve) => raw.on("close", () => resolve()));
      raw.on("error", () => {});
      raw.write(Uint8Array.of(0x7f, 0xff, 0xff, 0xff, 1, 2, 3));
      await closed;
      await new Promise((r) => setTimeout(r, 20));
      expect(server.connected).toBe(false);
      expect(changes).toEqual([true, false]);
      expect(server.counters.dropped).toBe(1);
      server.send(frame(1)); // nobody connected: dropped, no throw
      expect(server.counters.dropped).toBe(2);
    } finally {
      raw.destroy();
      await server.close();
    }
  });

  it("connect rejects when nobody listens", async () => {
    const probe = createServer();
    const port = await new Promise<number>((resolve) => probe.listen(0, "127.0.0.1", () => resolve((probe.address() as { port: number }).port)));
    await new Promise<void>((r) => probe.close(() => r()));
    await expect(StreamBackend.connect({ host: "127.0.0.1", port })).rejects.toThrow();
  });
});

describe.skipIf(qemu.skip)("interoperability with QEMU 7.2's -netdev dgram / stream", () => {
  /** Waits for iPXE's DHCPDISCOVER, answers with an offer, waits for the DHCPREQUEST. */
  async function dhcpHandshake(port: DgramBackend | StreamBackend): Promise<void> {
    const discover = await new Promise<{ xid: number; frame: Uint8Array }>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("no DHCPDISCOVER from QEMU")), 40_000);
      port.onReceive((f) => {
        const d = dhcpFromFrame(f);
        if (d?.type === 1) {
          clearTimeout(t);
          resolve({ xid: d.xid, frame: f });
        }
      });
    });
    const ip = parseIpv4Packet(discover.frame)!;
    expect(ip.headerOk).toBe(true);
    expect(udpChecksumOk(ip)).toBe(true);
    expect(Array.from(discover.frame.subarray(6, 12))).toEqual([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
    const request = new Promise<number>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("no DHCPREQUEST after our offer")), 40_000);
      port.onReceive((f) => {
        const d = dhcpFromFrame(f);
        if (d?.type === 3) {
          clearTimeout(t);
          resolve(d.xid);
        }
      });
    });
    const offer = dhcpOffer(discover.xid);
    port.send(offer);
    const resend = setInterval(() => port.send(offer), 1000);
    try {
      expect(await request).toBe(discover.xid);
    } finally {
      clearInterval(resend);
    }
  }

  it("dgram: QEMU's e1000 frames reach us as datagrams and ours reach its guest", { timeout: 90_000 }, async () => {
    qemu.check();
    const ours = await DgramBackend.open();
    const theirs = await DgramBackend.open(); // reserve a free port for QEMU, then release it
    const qemuPort = theirs.local.port;
    await theirs.close();
    ours.setRemote({ host: "127.0.0.1", port: qemuPort });
    const p = startQemu(`dgram,id=n0,local.type=inet,local.host=127.0.0.1,local.port=${qemuPort},remote.type=inet,remote.host=127.0.0.1,remote.port=${ours.local.port}`);
    try {
      await dhcpHandshake(ours);
    } finally {
      await stopQemu(p);
      await ours.close();
    }
  });

  it("stream: we connect to QEMU's listener (server=on)", { timeout: 90_000 }, async () => {
    qemu.check();
    const probe = createServer();
    const port = await new Promise<number>((resolve) => probe.listen(0, "127.0.0.1", () => resolve((probe.address() as { port: number }).port)));
    await new Promise<void>((r) => probe.close(() => r()));
    const p = startQemu(`stream,id=n0,server=on,addr.type=inet,addr.host=127.0.0.1,addr.port=${port}`);
    let ours: StreamBackend | undefined;
    try {
      for (let i = 0; i < 100 && ours === undefined; i++) {
        try {
          ours = await StreamBackend.connect({ host: "127.0.0.1", port });
        } catch {
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      expect(ours).toBeDefined();
      await dhcpHandshake(ours!);
    } finally {
      await stopQemu(p);
      await ours?.close();
    }
  });

  it("stream: QEMU connects to our listener; frames flow both ways with length prefixes", { timeout: 90_000 }, async () => {
    qemu.check();
    const ours = await StreamBackend.listen();
    const p = startQemu(`stream,id=n0,server=off,addr.type=inet,addr.host=127.0.0.1,addr.port=${ours.address!.port}`);
    try {
      await ours.whenConnected();
      await dhcpHandshake(ours);
    } finally {
      await stopQemu(p);
      await ours.close();
    }
  });
});
