/**
 * The network path of the Xen 2.0 system, built in steps like the block path:
 *
 *   domU: NetStack ─ netfront (eth0) ──tx/rx rings, grants, events──▶ dom0: netback (vifD.N)
 *                                                                          │
 *   dom0: bridge xenbr0 ── vif1.0, vif2.0, ... ── eth0: driver-e1000 (vanilla, promiscuous)
 *                                                      │ checked MMIO/ports, pirq, DMA
 *                                                      ▼
 *                                                hw-e1000 (82540EM) ─▶ cable ─▶ the wire (a SimulatedHost, pcap)
 *
 * {@link plugE1000} puts the NIC on the board (before `probeHardware`), {@link startE1000Driver}
 * runs dom0's vanilla e1000 driver on the NIC the hypervisor assigned to dom0 (by PCI id, see
 * {@link E1000_ASSIGNMENT}) and bridges it, {@link addVif} gives a guest a vif the way the
 * toolstack does (dom0's xenbus binds netback and adds its vif to the bridge, the guest's
 * xenbus binds netfront as eth0), {@link attachSimulatedHost} puts a host on the wire and
 * {@link startStack} runs an IPv4 stack in a guest. {@link bootXen2Net} composes them.
 */
import { cable, formatMac, parseMac, type EthernetPort, type TimerQueue } from "@paravirt/vm-interfaces";
import type { DeviceAssignment } from "@paravirt/hypervisor-core";
import { E1000PciFunction } from "@paravirt/hw-e1000";
import { probeE1000, type E1000Nic, type E1000Options } from "@paravirt/driver-e1000";
import { Bridge } from "@paravirt/net-bridge";
import { Netback } from "@paravirt/netback";
import { Netfront } from "@paravirt/netfront";
import { PcapFile, SimulatedHost, type PcapWriter } from "@paravirt/net-wire";
import { NetStack, parseIpv4, type NetStackOptions } from "@paravirt/net-stack";
import { addXenbusDevice } from "@paravirt/xenstore";
import { addDomU, createMachine, probeHardware, type Guest, type Machine, type Narrate } from "./system.ts";

/** The 82540EM's PCI id [8254x SDM 4.1, table 4-2]. */
export const E1000_PCI_ID = { vendorId: 0x8086, deviceId: 0x100e } as const;

/** The toolstack configuration line giving the e1000 to dom0 (pass in `createMachine({ assignments })`). */
export const E1000_ASSIGNMENT: DeviceAssignment = { device: E1000_PCI_ID, domain: "dom0" };

/** PCI slot the NIC goes into by default (00:03.0, as QEMU puts its first NIC). */
export const E1000_SLOT = 3;

export interface PlugE1000Options {
  /** PCI device number on bus 0 (default 3). */
  slot?: number;
  /** The NIC's MAC (default 52:54:00:12:34:56, the model's). */
  mac?: Uint8Array | string;
  /** Capture the wire: a pcap file path (timestamps in virtual time) or a writer. */
  pcap?: string | PcapWriter;
}

export interface PluggedE1000 {
  fn: E1000PciFunction;
  /** The far end of the NIC's cable: plug a SimulatedHost, a QEMU socket backend, ... into it. */
  wire: EthernetPort;
  /** The capture, when `pcap` was given (a `PcapFile` must be `close()`d). */
  pcap: PcapWriter | undefined;
}

/** Puts an 82540EM on the board, its wire one end of a cable whose far end is returned. Call before `probeHardware`. */
export function plugE1000(m: Machine, o: PlugE1000Options = {}): PluggedE1000 {
  const slot = o.slot ?? E1000_SLOT;
  const pcap = typeof o.pcap === "string" ? new PcapFile(o.pcap, { clock: m.clock }) : o.pcap;
  const [nicEnd, wire] = cable(pcap?.tap);
  const mac = typeof o.mac === "string" ? parseMac(o.mac) : o.mac;
  const fn = new E1000PciFunction({ memory: m.board.memory, irq: m.board.intxLine(slot), clock: m.clock, port: nicEnd, ...(mac ? { mac } : {}) });
  m.board.plugPci(slot, fn);
  m.say(m.clock.now(), "board", `e1000 (8086:100e) plugged at 00:${slot.toString(16).padStart(2, "0")}.0, mac ${formatMac(fn.device.mac)}${pcap ? ", wire captured" : ""}`);
  return { fn, wire, pcap };
}

/** dom0's network state: the NIC its driver serves, the bridge and the vifs' back ends. */
export interface Dom0Network {
  nic: E1000Nic;
  bridge: Bridge;
  /** Back ends by vif name (`vif<domid>.<handle>`). */
  netbacks: Map<string, Netback>;
}

const networks = new WeakMap<Machine, Dom0Network>();

/** dom0's network state once {@link startE1000Driver} ran. */
export function dom0Network(m: Machine): Dom0Network {
  const n = networks.get(m);
  if (n === undefined) throw new Error("dom0 has no network yet: call startE1000Driver first");
  return n;
}

/**
 * dom0's vanilla e1000 driver probes the NIC the hypervisor assigned to dom0 (BAR MMIO and
 * I/O ranges, the IRQ as a pirq), waits for the link, and is joined to dom0's bridge `xenbr0`
 * in promiscuous mode (it must accept frames for the domUs' MACs). Registered in dom0's
 * kernel as `eth0`.
 */
export async function startE1000Driver(m: Machine, options: E1000Options = {}): Promise<E1000Nic> {
  if (networks.has(m)) throw new Error("dom0's e1000 driver is already running");
  const d0 = m.dom0;
  m.say(m.clock.now(), "dom0", "probing PCI for network controllers (vanilla e1000 driver)");
  const platform = d0.kernel.platform;
  if (platform === undefined) throw new Error("dom0 has no driver platform");
  const { nics, failed } = await m.run(probeE1000(platform, options));
  for (const f of failed) m.say(m.clock.now(), "dom0", `e1000 at ${f.device.address.device}: ${f.reason}`);
  const nic = nics[0];
  if (nic === undefined) throw new Error("dom0's e1000 driver found no NIC (is it assigned to dom0?)");
  d0.kernel.netDevices.add("eth0", nic);
  m.say(m.clock.now(), "dom0", `eth0: e1000 mac ${formatMac(nic.mac)}, link ${nic.linkUp ? `up ${nic.speedMbps} Mbit/s ${nic.duplex ?? ""}` : "down"}`);
  nic.setPromiscuous(true);
  const bridge = new Bridge({ clock: m.clock });
  bridge.addPort("eth0", nic);
  m.say(m.clock.now(), "dom0", "xenbr0: bridge up, eth0 joined (promiscuous)");
  networks.set(m, { nic, bridge, netbacks: new Map() });
  return nic;
}

export interface Vif {
  name: string;
  netfront: Netfront;
  netback: Netback;
}

/**
 * The toolstack's half of a vif: dom0's netback driver registered (once), then the xenstore
 * directories (`backend/vif/<domid>/<handle>` in dom0, `device/vif/<handle>` in the guest).
 * dom0's xenbus binds a netback to it and adds its vif to xenbr0; whatever runs in the guest
 * connects the front end. Returns the vif's name in dom0 (`vif<domid>.<handle>`).
 */
export async function createVifDevice(m: Machine, guest: Guest, mac: Uint8Array | string, handle = 0): Promise<string> {
  const net = dom0Network(m);
  const d0 = m.dom0;
  const macText = typeof mac === "string" ? formatMac(parseMac(mac)) : formatMac(mac);
  if (!registered.has(m)) {
    registered.add(m);
    // The first vif registers dom0's netback driver for every vif from now on.
    await m.run(
      d0.kernel.backends.register("vif", (d) => {
        const name = `vif${d.frontendDomid}.${d.devid}`;
        // Frames are lent to the bridge: every port it forwards to (the e1000 driver, other
        // vifs) copies what it keeps before returning.
        const nb = new Netback({ xen: d.xen, frontendDomid: d.frontendDomid, handle: d.devid, backendPath: d.backendPath, lendFrames: true, log: (l) => m.say(m.clock.now(), "dom0/netback", l) });
        net.netbacks.set(name, nb);
        d0.kernel.netDevices.add(name, nb.vif);
        net.bridge.addPort(name, nb.vif);
        m.say(m.clock.now(), "dom0", `xenbr0: ${name} joined`);
        return { start: () => nb.start(), stop: () => nb.stop() };
      }),
    );
  }
  await m.run(
    addXenbusDevice(m.toolstack, {
      kind: "vif",
      frontendDomid: guest.domain.domid,
      backendDomid: d0.domain.domid,
      devid: handle,
      frontend: { handle: String(handle), mac: macText },
      backend: { handle: String(handle), mac: macText, bridge: "xenbr0", script: "vif-bridge" },
    }),
  );
  m.say(m.clock.now(), "toolstack", `vif ${handle} of ${guest.kernel.name} (mac ${macText}) -> dom0 xenbr0`);
  return `vif${guest.domain.domid}.${handle}`;
}

const registered = new WeakSet<Machine>();

/**
 * Gives `guest` a vif with `mac` as the toolstack does ({@link createVifDevice}); the guest's
 * xenbus binds netfront as `eth<handle>`. Resolves once both ends are Connected.
 */
export async function addVif(m: Machine, guest: Guest, mac: Uint8Array | string, handle = 0): Promise<Vif> {
  const name = await createVifDevice(m, guest, mac, handle);
  let netfront: Netfront | undefined;
  await m.run(
    guest.kernel.frontends.probe("vif", (d) => {
      // As many TX buffers as the ring has slots (Linux's netfront keeps NET_TX_RING_SIZE in flight).
      const nf = new Netfront({ xen: d.xen, handle: d.devid, txBuffers: 256, log: (l) => m.say(m.clock.now(), `${guest.kernel.name}/netfront`, l) });
      if (d.devid === handle) netfront = nf;
      guest.kernel.netDevices.add(`eth${d.devid}`, nf);
      return { connect: () => nf.connect(), close: () => nf.close() };
    }),
  );
  const netback = dom0Network(m).netbacks.get(name);
  if (netfront === undefined || netback === undefined || !netfront.linkUp) throw new Error(`vif ${handle} of ${guest.kernel.name} did not connect`);
  return { name, netfront, netback };
}

/** A timer queue whose callbacks run as tasks of `guest`'s domain (as the driver platform's do). */
export function guestTimers(m: Machine, guest: Guest): TimerQueue {
  const clock = m.clock;
  return {
    now: () => clock.now(),
    schedule: (at, callback) => clock.schedule(at, () => guest.domain.post(callback)),
    cancel: (id) => clock.cancel(id),
  };
}

/** Runs `fn` as a task of `guest`'s domain and resolves with what it returns (or its promise's value). */
export function inGuest<T>(guest: Guest, fn: () => T | Promise<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    guest.domain.post(() => {
      try {
        Promise.resolve(fn()).then(resolve, reject);
      } catch (e) {
        reject(e instanceof Error ? e : new Error(String(e)));
      }
    });
  });
}

/** An IPv4 stack in `guest` on its `eth<handle>` (timers run as the guest's tasks). */
export function startStack(m: Machine, guest: Guest, ip: string, options: Partial<Omit<NetStackOptions, "device" | "ip" | "timers">> & { device?: string } = {}): NetStack {
  const { device: devName = "eth0", ...rest } = options;
  const device = guest.kernel.netDevices.get(devName);
  if (device === undefined) throw new Error(`${guest.kernel.name} has no ${devName}`);
  const stack = new NetStack({ device, ip, timers: guestTimers(m, guest), log: (l) => m.say(m.clock.now(), `${guest.kernel.name}/net`, l), ...rest });
  m.say(m.clock.now(), guest.kernel.name, `${devName}: ${ip}/${rest.prefixLength ?? 24}`);
  return stack;
}

export interface SimulatedHostSpec {
  mac?: Uint8Array | string;
  ip?: string;
  /** Reply latency in virtual ns (default 20 µs). */
  replyDelayNs?: number;
  udpEchoPorts?: readonly number[];
}

/** Default address of the simulated host on the wire. */
export const WIRE_HOST = { mac: "02:00:00:00:00:fe", ip: "10.0.0.254" } as const;

/** Puts a {@link SimulatedHost} on `wire` (it answers ARP, ping and UDP echo on port 7). */
export function attachSimulatedHost(m: Machine | { clock: TimerQueue }, wire: EthernetPort, spec: SimulatedHostSpec = {}): SimulatedHost {
  const mac = spec.mac ?? WIRE_HOST.mac;
  const host = new SimulatedHost({
    mac: typeof mac === "string" ? parseMac(mac) : mac,
    ip: parseIpv4(spec.ip ?? WIRE_HOST.ip),
    clock: m.clock,
    replyDelayNs: spec.replyDelayNs ?? 20_000,
    ...(spec.udpEchoPorts ? { udpEchoPorts: spec.udpEchoPorts } : {}),
  });
  host.plugInto(wire);
  return host;
}

export interface Xen2NetOptions {
  /** Capture the e1000's wire to this pcap file. */
  pcap?: string | PcapWriter;
  /** Machine memory in MiB (default 96). */
  memoryMiB?: number;
  /** Options for dom0's e1000 driver (ring sizes, interrupt delays). */
  driver?: E1000Options;
  narrate?: Narrate;
  /** Number of domUs, each with one vif and a stack (default 2). */
  domUs?: number;
}

export interface NetGuest extends Guest {
  vif: Vif;
  stack: NetStack;
  ip: string;
  mac: string;
}

export interface Xen2NetSystem extends Machine {
  e1000: PluggedE1000;
  dom0: Guest & Dom0Network;
  domUs: NetGuest[];
  /** The simulated host on the wire (10.0.0.254). */
  host: SimulatedHost;
  /** Stops the capture (closes a pcap file given by path). */
  close(): void;
}

/** The network example: dom0 with the e1000 and a bridge, domUs `10.0.0.<10+i>` with vifs, a simulated host on the wire. */
export async function bootXen2Net(o: Xen2NetOptions = {}): Promise<Xen2NetSystem> {
  const m = createMachine({
    ...(o.memoryMiB !== undefined ? { memoryMiB: o.memoryMiB } : {}),
    ...(o.narrate !== undefined ? { narrate: o.narrate } : {}),
    assignments: [E1000_ASSIGNMENT],
  });
  const e1000 = plugE1000(m, o.pcap !== undefined ? { pcap: o.pcap } : {});
  const host = attachSimulatedHost(m, e1000.wire);
  probeHardware(m);
  await startE1000Driver(m, o.driver);
  const domUs: NetGuest[] = [];
  for (let i = 1; i <= (o.domUs ?? 2); i++) {
    const g = addDomU(m, `domU${i}`);
    const mac = `00:16:3e:00:00:${i.toString(16).padStart(2, "0")}`;
    const vif = await addVif(m, g, mac);
    const ip = `10.0.0.${10 + i}`;
    domUs.push({ ...g, vif, stack: startStack(m, g, ip), ip, mac });
  }
  const net = dom0Network(m);
  // The same machine object, extended (the network helpers keep their state per machine).
  const sys: Xen2NetSystem = Object.assign(m, {
    e1000,
    dom0: { ...m.dom0, ...net },
    domUs,
    host,
    close: () => {
      if (e1000.pcap instanceof PcapFile) e1000.pcap.close();
    },
  });
  return sys;
}

/** Counters along the network path, JSON-able, for a narrative or `--json`. */
export interface NetCounters {
  nic: { txPackets: number; rxPackets: number; txCopied: number; txZeroCopy: number; txDropped: number; interrupts: number; wireTxFrames: number; wireRxFrames: number };
  bridge: Record<string, { rxFrames: number; txFrames: number; flooded: number }>;
  vifs: Record<string, { netback: Netback["stats"]; netfront: Netfront["stats"] }>;
  host: SimulatedHost["counters"];
}

/** Reads the counters of every stage (the NIC's statistics registers are read, and cleared into the driver's totals). */
export function netCounters(sys: Xen2NetSystem): NetCounters {
  const s = sys.dom0.nic.statistics();
  const bridge: NetCounters["bridge"] = {};
  for (const name of ["eth0", ...sys.dom0.netbacks.keys()]) {
    const st = sys.dom0.bridge.stats(name);
    if (st !== undefined) bridge[name] = { ...st };
  }
  const vifs: NetCounters["vifs"] = {};
  for (const g of sys.domUs) vifs[g.vif.name] = { netback: { ...g.vif.netback.stats }, netfront: { ...g.vif.netfront.stats } };
  return {
    nic: {
      txPackets: s.txPackets, rxPackets: s.rxPackets, txCopied: s.txCopied, txZeroCopy: s.txZeroCopy, txDropped: s.txDropped,
      interrupts: s.interrupts, wireTxFrames: s.hw.goodPacketsTx, wireRxFrames: s.hw.goodPacketsRx,
    },
    bridge,
    vifs,
    host: { ...sys.host.counters },
  };
}

export interface NetWorkloadOptions {
  /** Pings from domU1 to the host on the wire (default 4). */
  pings?: number;
  /** UDP datagrams domU1 sends to domU2's echo service over the bridge (default 100). */
  datagrams?: number;
  /** UDP datagrams domU2 sends to the host's echo port on the wire (default 20). */
  wireDatagrams?: number;
}

export interface NetWorkloadResult {
  /** domU1 → 10.0.0.254 through the e1000. */
  pings: { seq: number; rttNs: number; bytes: number; ttl: number }[];
  /** domU1 ↔ domU2 over dom0's bridge: every datagram echoed back reversed and checked. */
  domUToDomU: { sent: number; echoed: number; intact: boolean; nicTxFrames: number; virtualNs: number };
  /** domU2 → the host's UDP echo port on the wire and back. */
  toWire: { sent: number; echoed: number; intact: boolean };
  counters: NetCounters;
}

/** Runs until `cond()` holds, checking every 100 µs of virtual time. */
function until(sys: Machine, cond: () => boolean): Promise<void> {
  return sys.run(new Promise<void>((resolve) => {
    const check = () => (cond() ? resolve() : sys.clock.schedule(sys.clock.now() + 100_000, check));
    check();
  }));
}

/** The network demo's workload on a {@link bootXen2Net} system (at least two domUs): pings to the wire, UDP between the domUs and to the wire. */
export async function runNetworkWorkload(sys: Xen2NetSystem, o: NetWorkloadOptions = {}): Promise<NetWorkloadResult> {
  const [u1, u2] = sys.domUs;
  if (u1 === undefined || u2 === undefined) throw new Error("the network workload needs two domUs");
  const pings: NetWorkloadResult["pings"] = [];
  for (let seq = 1; seq <= (o.pings ?? 4); seq++) {
    const r = await sys.run(inGuest(u1, () => u1.stack.ping(WIRE_HOST.ip, { seq })));
    pings.push({ seq: r.seq, rttNs: r.rttNs, bytes: r.bytes, ttl: r.ttl });
    sys.say(sys.clock.now(), u1.kernel.name, `64 bytes from ${WIRE_HOST.ip}: icmp_seq=${r.seq} ttl=${r.ttl} time=${(r.rttNs / 1000).toFixed(1)} µs`);
  }
  const payload = (i: number) => Uint8Array.from({ length: 16 + ((i * 97) % 1400) }, (_, j) => (i * 31 + j) & 0xff);
  // domU2 runs an echo service; domU1 sends to it over the bridge.
  const n = o.datagrams ?? 100;
  const port = 5000;
  const echoService = await sys.run(inGuest(u2, () => u2.stack.bind(port, (data, meta) => void u2.stack.sendUdp(port, meta.src, meta.srcPort, data.slice().reverse()))));
  const back: Uint8Array[] = [];
  const sock = await sys.run(inGuest(u1, () => u1.stack.bind(0, (d) => back.push(d))));
  const nicTx0 = sys.dom0.nic.statistics().hw.goodPacketsTx;
  const t0 = sys.clock.now();
  await sys.run(inGuest(u1, async () => {
    for (let i = 0; i < n; i++) await sock.sendTo(u2.ip, port, payload(i));
  }));
  await until(sys, () => back.length >= n);
  const virtualNs = sys.clock.now() - t0;
  const nicTxFrames = sys.dom0.nic.statistics().hw.goodPacketsTx - nicTx0;
  const intact = back.every((d, i) => d.length === payload(i).length && d.every((b, j) => b === payload(i)[payload(i).length - 1 - j]));
  sys.say(sys.clock.now(), "dom0", `xenbr0: ${n} datagrams ${u1.vif.name} -> ${u2.vif.name} and ${back.length} back, ${nicTxFrames} frame(s) to the e1000`);
  sock.close();
  echoService.close();
  // domU2 → the host's UDP echo (port 7) on the wire.
  const w = o.wireDatagrams ?? 20;
  const wireBack: Uint8Array[] = [];
  const wsock = await sys.run(inGuest(u2, () => u2.stack.bind(0, (d) => wireBack.push(d))));
  await sys.run(inGuest(u2, async () => {
    for (let i = 0; i < w; i++) await wsock.sendTo(WIRE_HOST.ip, 7, payload(i));
  }));
  await until(sys, () => wireBack.length >= w);
  wsock.close();
  const wireIntact = wireBack.every((d, i) => d.length === payload(i).length && d.every((b, j) => b === payload(i)[j]));
  sys.say(sys.clock.now(), u2.kernel.name, `${w} datagrams echoed by ${WIRE_HOST.ip}:7 through the e1000`);
  return {
    pings,
    domUToDomU: { sent: n, echoed: back.length, intact, nicTxFrames, virtualNs },
    toWire: { sent: w, echoed: wireBack.length, intact: wireIntact },
    counters: netCounters(sys),
  };
}
