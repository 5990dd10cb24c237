import { EVTCHNOP, GNTMAP, GNTTABOP, GTF } from "@paravirt/device-channel";
import { DOMID, GNTST, type VcpuExit } from "@paravirt/vm-interfaces";
import { describe, expect, it } from "vitest";
import { HYPERVISOR, Hypervisor, SCHEDOP, SHUTDOWN, XENVER, identityVirtualMemory, registerFile, type GuestVirtualMemory, type PvVcpu, type X86Registers } from "../src/index.ts";

/**
 * A stand-in for cpu-x86: each step plays the guest code before an `int 0x82` (it sets
 * registers and argument structs), then the vCPU exits with the intercept; a step may instead
 * halt. Results are read back from EAX by the next step, as guest code would.
 */
class ScriptedVcpu implements PvVcpu {
  readonly file = new Int32Array(8);
  readonly regs: X86Registers = registerFile(this.file);
  memory!: GuestVirtualMemory;
  instructionsRetired = 0;
  readonly results: number[] = [];
  private readonly steps: ((r: X86Registers, m: GuestVirtualMemory) => "hypercall" | "halt")[];
  private i = 0;
  private started = false;

  constructor(steps: ((r: X86Registers, m: GuestVirtualMemory) => "hypercall" | "halt")[]) {
    this.steps = steps;
  }
  run(_budget: number): VcpuExit {
    if (this.started) this.results.push(this.regs.eax | 0);
    this.started = true;
    this.instructionsRetired += 10;
    const step = this.steps[this.i++];
    if (step === undefined) return { reason: "halt", executed: 10 };
    const what = step(this.regs, this.memory);
    if (what === "halt") {
      this.started = false;
      return { reason: "halt", executed: 10 };
    }
    return { reason: "intercept", vector: 0x82, executed: 10 };
  }
  requestStop(): void {}
}

function call(nr: number, ebx = 0, ecx = 0, edx = 0) {
  return (r: X86Registers) => {
    r.eax = nr;
    r.ebx = ebx;
    r.ecx = ecx;
    r.edx = edx;
    return "hypercall" as const;
  };
}

describe("the x86 PV register path lands in the same hypercall implementations", () => {
  it("decodes event-channel, grant-table, sched and version calls from registers and guest memory", () => {
    const hv = new Hypervisor({ memoryFrames: 1024 });
    const dom0 = hv.createNativeDomain({ name: "dom0", privileged: true, memoryPages: 32 });
    let dom0Ref = -1;
    let dom0Port = -1;
    let dom0Hits = 0;
    const steps = [
      call(HYPERVISOR.xen_version, XENVER.version),
      call(99),
      (r: X86Registers, m: GuestVirtualMemory) => {
        // evtchn_alloc_unbound at 0x1000: dom=DOMID_SELF, remote_dom=0
        m.writeU16(0x1000, DOMID.SELF);
        m.writeU16(0x1002, 0);
        return call(HYPERVISOR.event_channel_op, EVTCHNOP.alloc_unbound, 0x1000)(r);
      },
      (r: X86Registers, m: GuestVirtualMemory) => {
        // gnttab_setup_table at 0x1100: dom SELF, nr_frames 1, frame_list → 0x1200
        m.writeU16(0x1100, DOMID.SELF);
        m.writeU32(0x1104, 1);
        m.writeU32(0x110c, 0x1200);
        return call(HYPERVISOR.grant_table_op, GNTTABOP.setup_table, 0x1100, 1)(r);
      },
      (r: X86Registers, m: GuestVirtualMemory) => {
        // gnttab_map_grant_ref at 0x1300 of dom0's grant, read-only
        m.writeU32(0x1308, GNTMAP.host_map | GNTMAP.readonly);
        m.writeU32(0x130c, dom0Ref);
        m.writeU16(0x1310, 0);
        return call(HYPERVISOR.grant_table_op, GNTTABOP.map_grant_ref, 0x1300, 1)(r);
      },
      (r: X86Registers, m: GuestVirtualMemory) => {
        // and a writable map of the same read-only grant: refused in its status field
        m.writeU32(0x1328, GNTMAP.host_map);
        m.writeU32(0x132c, dom0Ref);
        m.writeU16(0x1330, 0);
        return call(HYPERVISOR.grant_table_op, GNTTABOP.map_grant_ref, 0x1320, 1)(r);
      },
      call(HYPERVISOR.sched_op, SCHEDOP.yield),
      (r: X86Registers, m: GuestVirtualMemory) => {
        m.writeU32(0x1400, m.readU32(0x1004)!); // evtchn_send {port}
        return call(HYPERVISOR.event_channel_op, EVTCHNOP.send, 0x1400)(r);
      },
      call(HYPERVISOR.event_channel_op, EVTCHNOP.send, 0xfffff000), // unmapped argument
      call(HYPERVISOR.sched_op, SCHEDOP.block),
      (r: X86Registers, m: GuestVirtualMemory) => {
        m.writeU32(0x1500, SHUTDOWN.poweroff);
        return call(HYPERVISOR.sched_op, SCHEDOP.shutdown, 0x1500)(r);
      },
    ];
    const vcpu = new ScriptedVcpu(steps);
    const domU = hv.createPvDomain({ name: "pv", memoryPages: 64, vcpu });
    vcpu.memory = identityVirtualMemory(hv.pseudoPhysical(domU.domid));
    dom0.post(() => {
      const page = dom0.pages.allocPage();
      page.bytes[7] = 0x77;
      dom0Ref = dom0.gnttab.grantAccess(domU.domid, page.frame, true);
    });
    hv.pause(domU.domid);
    hv.run();
    hv.unpause(domU.domid);
    // Let the PV guest run until it blocks.
    hv.run();
    const m = vcpu.memory;
    expect(vcpu.results.slice(0, 2)).toEqual([0x00020000, -38]);
    expect(vcpu.results[2]).toBe(0);
    const port = m.readU32(0x1004)!;
    expect(port).toBeGreaterThan(0);
    expect(hv.hypercalls.evtchnStatus(dom0.record, domU.domid, port)).toMatchObject({ status: 1, dom: 0 });
    // setup_table: frame_list[0] is the MFN of domU's grant-table frame.
    expect(vcpu.results[3]).toBe(0);
    expect(m.readU16(0x1108)).toBe(0);
    expect(m.readU32(0x1200)).toBe(domU.grantFrames[0]);
    // map_grant_ref: status okay, a handle, dev_bus_addr = machine address of dom0's page.
    expect(vcpu.results[4]).toBe(0);
    expect(m.readU16(0x1312)).toBe(0);
    const bus = m.readU32(0x1318)!;
    expect(hv.memory.readU8(bus + 7)).toBe(0x77);
    expect(hv.memory.owner[bus / 4096]).toBe(dom0.domid);
    expect((m.readU16(0x1332)! << 16) >> 16).toBe(GNTST.general_error);
    // yield ok; send on an unbound port: -EINVAL; unmapped argument: -EFAULT.
    expect(vcpu.results.slice(6, 9)).toEqual([0, -22, -14]);
    expect(domU.blocked).toBe(true);
    // dom0 binds the port and notifies: the blocked vCPU wakes and runs on (to shutdown).
    dom0.post(() => {
      dom0Port = dom0.evtchn.bindInterdomain(domU.domid, port);
      dom0.evtchn.onEvent(dom0Port, () => dom0Hits++);
      dom0.evtchn.notify(dom0Port);
    });
    hv.run();
    expect(vcpu.results[9]).toBe(0);
    expect(domU.state).toBe("shutdown");
    expect(domU.shutdownReason).toBe(SHUTDOWN.poweroff);
    expect(domU.sharedInfo.upcallMask(0)).toBe(0); // SCHEDOP_block enabled delivery
    // The grant is still pinned read-only by domU's mapping.
    const entryFlags = hv.memory.dv.getUint16(hv.gnttab.entryAddress(dom0.record, dom0Ref), true);
    expect(entryFlags).toBe(GTF.permit_access | GTF.readonly | GTF.reading);
    hv.destroy(domU.domid);
    expect(hv.memory.dv.getUint16(hv.gnttab.entryAddress(dom0.record, dom0Ref), true)).toBe(GTF.permit_access | GTF.readonly);
    expect(dom0Hits).toBe(1); // the bind_interdomain kick
    expect(hv.hypercalls.counts.get(HYPERVISOR.grant_table_op)).toBeGreaterThanOrEqual(3);
  });

  it("mmu_update records M2P entries for the guest's own frames only, stopping at the first bad one", () => {
    const hv = new Hypervisor({ memoryFrames: 512 });
    const dom0 = hv.createNativeDomain({ name: "dom0", privileged: true, memoryPages: 16 });
    const reqs = 0x2000;
    const count = 0x2100;
    let mine: number[] = [];
    const steps = [
      (r: X86Registers, m: GuestVirtualMemory) => {
        // Swap the M2P entries of pfns 3 and 4 (as PV GRUB does for its console/xenstore pages).
        const put = (i: number, mfn: number, pfn: number) => {
          m.writeU32(reqs + i * 16, ((mfn * 4096) | 1) >>> 0);
          m.writeU32(reqs + i * 16 + 4, 0);
          m.writeU32(reqs + i * 16 + 8, pfn);
          m.writeU32(reqs + i * 16 + 12, 0);
        };
        put(0, mine[3]!, 4);
        put(1, mine[4]!, 3);
        put(2, dom0.record.p2m[0]!, 1); // not ours
        put(3, mine[5]!, 5);
        r.eax = HYPERVISOR.mmu_update;
        r.ebx = reqs;
        r.ecx = 4;
        r.edx = count;
        r.esi = DOMID.SELF;
        return "hypercall" as const;
      },
    ];
    const vcpu = new ScriptedVcpu(steps);
    const pv = hv.createPvDomain({ name: "pv", memoryPages: 16, vcpu });
    mine = [...pv.p2m];
    vcpu.memory = identityVirtualMemory(hv.pseudoPhysical(pv.domid));
    hv.run();
    expect(vcpu.results[0]).toBe(-22);
    expect(vcpu.memory.readU32(count)).toBe(2);
    expect(hv.memory.m2p[mine[3]!]).toBe(4);
    expect(hv.memory.m2p[mine[4]!]).toBe(3);
    expect(hv.memory.m2p[dom0.record.p2m[0]!]).toBe(0);
  });

  it("the compat ABI of Xen 2.0-era kernels reaches the same implementations", () => {
    const hv = new Hypervisor({ memoryFrames: 512 });
    hv.createNativeDomain({ name: "dom0", privileged: true, memoryPages: 16 });
    const steps = [
      (r: X86Registers, m: GuestVirtualMemory) => {
        // struct evtchn_op { cmd = EVTCHNOP_alloc_unbound; u.alloc_unbound = { SELF, 0, port } }
        m.writeU32(0x1000, EVTCHNOP.alloc_unbound);
        m.writeU16(0x1004, DOMID.SELF);
        m.writeU16(0x1006, 0);
        return call(HYPERVISOR.event_channel_op_compat, 0x1000)(r);
      },
      (r: X86Registers, m: GuestVirtualMemory) => {
        m.writeU32(0x1100, 12); // PHYSDEVOP_eoi of an IRQ it does not have: -EINVAL
        m.writeU32(0x1104, 5);
        return call(HYPERVISOR.physdev_op_compat, 0x1100)(r);
      },
      call(HYPERVISOR.sched_op_compat, SCHEDOP.shutdown, SHUTDOWN.reboot),
    ];
    const vcpu = new ScriptedVcpu(steps);
    const pv = hv.createPvDomain({ name: "old", memoryPages: 16, vcpu });
    vcpu.memory = identityVirtualMemory(hv.pseudoPhysical(pv.domid));
    hv.run();
    expect(vcpu.results.slice(0, 2)).toEqual([0, -22]);
    expect(hv.hypercalls.evtchnStatus(pv, DOMID.SELF, vcpu.memory.readU32(0x1008)!)).toMatchObject({ status: 1, dom: 0 });
    expect(pv.shutdownReason).toBe(SHUTDOWN.reboot);
  });
});
