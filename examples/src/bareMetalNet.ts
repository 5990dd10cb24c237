/**
 * Example: the e1000 driver on bare metal. No hypervisor: the driver sees the board directly
 * (BareMetalPlatform) and drives hw-e1000's 82540EM, whose wire is one end of a cable; a
 * simulated host (or anything else) sits on the other. The same driver package runs unchanged
 * in dom0 in the Xen 2.0 network example (`xen2/network.ts`).
 */
import { PcBoard, BareMetalPlatform } from "@paravirt/pc-board";
import { E1000PciFunction } from "@paravirt/hw-e1000";
import { probeE1000, type E1000Nic, type E1000Options } from "@paravirt/driver-e1000";
import { NetStack } from "@paravirt/net-stack";
import { PcapFile, type PcapWriter } from "@paravirt/net-wire";
import { cable, parseMac, type EthernetPort } from "@paravirt/vm-interfaces";

export interface BareMetalNetOptions {
  ramBytes?: number;
  /** The NIC's MAC (default the model's 52:54:00:12:34:56). */
  mac?: Uint8Array | string;
  /** PCI slot (default 3). */
  slot?: number;
  /** The machine's IPv4 address (default 10.0.0.2). */
  ip?: string;
  /** Capture the wire (a pcap path or writer). */
  pcap?: string | PcapWriter;
  driver?: E1000Options;
}

export interface BareMetalNetMachine {
  board: PcBoard;
  platform: BareMetalPlatform;
  e1000: E1000PciFunction;
  /** The NIC as the driver serves it. */
  nic: E1000Nic;
  /** The IPv4 stack on the NIC. */
  stack: NetStack;
  /** The far end of the NIC's cable. */
  wire: EthernetPort;
  pcap: PcapWriter | undefined;
  /** Runs the machine until `p` settles and returns its value. */
  run<T>(p: Promise<T>): Promise<T>;
}

/** Builds a PC with an 82540EM, probes it with the driver and starts an IPv4 stack on it. */
export async function bootBareMetalNet(o: BareMetalNetOptions = {}): Promise<BareMetalNetMachine> {
  const board = new PcBoard({ ramBytes: o.ramBytes ?? 64 << 20 });
  const slot = o.slot ?? 3;
  const pcap = typeof o.pcap === "string" ? new PcapFile(o.pcap, { clock: board.clock }) : o.pcap;
  const [nicEnd, wire] = cable(pcap?.tap);
  const mac = typeof o.mac === "string" ? parseMac(o.mac) : o.mac;
  const e1000 = new E1000PciFunction({ memory: board.memory, irq: board.intxLine(slot), clock: board.clock, port: nicEnd, ...(mac ? { mac } : {}) });
  board.plugPci(slot, e1000);
  board.boot();
  const platform = new BareMetalPlatform(board);
  const run = async <T>(p: Promise<T>): Promise<T> => {
    let settled = false;
    const watched = p.finally(() => {
      settled = true;
    });
    watched.catch(() => {});
    await board.run(() => settled);
    return watched;
  };
  const { nics, failed } = await run(probeE1000(platform, o.driver));
  const nic = nics[0];
  if (nic === undefined) throw new Error(`the e1000 driver found no NIC${failed[0] ? `: ${failed[0].reason}` : ""}`);
  const stack = new NetStack({ device: nic, ip: o.ip ?? "10.0.0.2", timers: board.clock });
  return { board, platform, e1000, nic, stack, wire, pcap, run };
}
