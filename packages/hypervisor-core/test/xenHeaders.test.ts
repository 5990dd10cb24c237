/**
 * Every offset, size and constant hypervisor-core uses for the guest ABI, against Xen's own
 * public headers: test/fixtures/hv-abi.json is written by scripts/gen-abi-fixture.sh (gcc -m32
 * over Debian's libxen-dev). Where gcc -m32 and apt-get work (always under CI), the fixture is
 * regenerated from the headers and must match the committed one.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { commandWorks, debianPackage, externalTool } from "@paravirt/test-support";
import { describe, expect, it } from "vitest";
import {
  ARGS_X86_32 as A, CONSOLEIO, DOMCTL, XENMEM, FLAT_RING1, HYPERVISOR_VIRT_START_PAE, MMU, MMUEXT, SIF, START_INFO, UVMF, XEN_ELFNOTE, GNTTAB_RESERVED, HYPERVISOR, NR_EVTCHN_PORTS, PHYSDEVOP, SCHEDOP, SHARED_INFO, SHUTDOWN,
  VCPU_INFO, VCPU_TIME_INFO, VMASST, XENIRQSTAT, XENVER,
} from "../src/index.ts";

const fixturePath = join(import.meta.dirname, "fixtures", "hv-abi.json");
const fixture = JSON.parse(readFileSync(fixturePath, "utf8")) as { x86_32: Record<string, number> };

function consts(prefix: string, o: Record<string, number>, skip: readonly string[] = []): Record<string, number> {
  return Object.fromEntries(Object.entries(o).filter(([k]) => !skip.includes(k)).map(([k, v]) => [`${prefix}${k}`, v]));
}

/** The TypeScript side, keyed as scripts/hv-abi.c prints. */
const ours: Record<string, number> = {
  "sizeof.shared_info": SHARED_INFO.SIZE, "shared_info.vcpu_info": SHARED_INFO.VCPU_INFO,
  "shared_info.evtchn_pending": SHARED_INFO.EVTCHN_PENDING, "shared_info.evtchn_mask": SHARED_INFO.EVTCHN_MASK,
  "shared_info.wc_version": SHARED_INFO.WC_VERSION, "shared_info.wc_sec": SHARED_INFO.WC_SEC, "shared_info.wc_nsec": SHARED_INFO.WC_NSEC,
  "shared_info.arch": SHARED_INFO.ARCH, "shared_info.arch.max_pfn": SHARED_INFO.ARCH_MAX_PFN,
  "sizeof.vcpu_info": VCPU_INFO.SIZE, "vcpu_info.evtchn_upcall_pending": VCPU_INFO.UPCALL_PENDING,
  "vcpu_info.evtchn_upcall_mask": VCPU_INFO.UPCALL_MASK, "vcpu_info.evtchn_pending_sel": VCPU_INFO.PENDING_SEL,
  "vcpu_info.arch": VCPU_INFO.ARCH, "vcpu_info.time": VCPU_INFO.TIME,
  "sizeof.vcpu_time_info": VCPU_TIME_INFO.SIZE, "vcpu_time_info.version": VCPU_TIME_INFO.VERSION,
  "vcpu_time_info.tsc_timestamp": VCPU_TIME_INFO.TSC_TIMESTAMP, "vcpu_time_info.system_time": VCPU_TIME_INFO.SYSTEM_TIME,
  "vcpu_time_info.tsc_to_system_mul": VCPU_TIME_INFO.TSC_TO_SYSTEM_MUL, "vcpu_time_info.tsc_shift": VCPU_TIME_INFO.TSC_SHIFT,
  "vcpu_time_info.flags": VCPU_TIME_INFO.FLAGS,
  XEN_LEGACY_MAX_VCPUS: SHARED_INFO.MAX_VCPUS, EVTCHN_2L_NR_CHANNELS: NR_EVTCHN_PORTS,
  "sizeof.evtchn_alloc_unbound": A.evtchn_alloc_unbound.SIZE, "evtchn_alloc_unbound.dom": A.evtchn_alloc_unbound.DOM,
  "evtchn_alloc_unbound.remote_dom": A.evtchn_alloc_unbound.REMOTE_DOM, "evtchn_alloc_unbound.port": A.evtchn_alloc_unbound.PORT,
  "sizeof.evtchn_bind_interdomain": A.evtchn_bind_interdomain.SIZE, "evtchn_bind_interdomain.remote_dom": A.evtchn_bind_interdomain.REMOTE_DOM,
  "evtchn_bind_interdomain.remote_port": A.evtchn_bind_interdomain.REMOTE_PORT, "evtchn_bind_interdomain.local_port": A.evtchn_bind_interdomain.LOCAL_PORT,
  "sizeof.evtchn_bind_virq": A.evtchn_bind_virq.SIZE, "evtchn_bind_virq.virq": A.evtchn_bind_virq.VIRQ,
  "evtchn_bind_virq.vcpu": A.evtchn_bind_virq.VCPU, "evtchn_bind_virq.port": A.evtchn_bind_virq.PORT,
  "sizeof.evtchn_bind_pirq": A.evtchn_bind_pirq.SIZE, "evtchn_bind_pirq.pirq": A.evtchn_bind_pirq.PIRQ,
  "evtchn_bind_pirq.flags": A.evtchn_bind_pirq.FLAGS, "evtchn_bind_pirq.port": A.evtchn_bind_pirq.PORT,
  "sizeof.evtchn_bind_ipi": A.evtchn_bind_ipi.SIZE, "evtchn_bind_ipi.vcpu": A.evtchn_bind_ipi.VCPU, "evtchn_bind_ipi.port": A.evtchn_bind_ipi.PORT,
  "evtchn_close.port": A.evtchn_port.PORT, "evtchn_send.port": A.evtchn_port.PORT, "evtchn_unmask.port": A.evtchn_port.PORT,
  "sizeof.evtchn_status": A.evtchn_status.SIZE, "evtchn_status.dom": A.evtchn_status.DOM, "evtchn_status.port": A.evtchn_status.PORT,
  "evtchn_status.status": A.evtchn_status.STATUS, "evtchn_status.vcpu": A.evtchn_status.VCPU,
  "evtchn_status.u.unbound.dom": A.evtchn_status.U_DOM, "evtchn_status.u.interdomain.dom": A.evtchn_status.U_DOM,
  "evtchn_status.u.interdomain.port": A.evtchn_status.U_PORT, "evtchn_status.u.pirq": A.evtchn_status.U_PIRQ,
  "evtchn_status.u.virq": A.evtchn_status.U_VIRQ,
  "sizeof.gnttab_map_grant_ref": A.gnttab_map_grant_ref.SIZE, "gnttab_map_grant_ref.host_addr": A.gnttab_map_grant_ref.HOST_ADDR,
  "gnttab_map_grant_ref.flags": A.gnttab_map_grant_ref.FLAGS, "gnttab_map_grant_ref.ref": A.gnttab_map_grant_ref.REF,
  "gnttab_map_grant_ref.dom": A.gnttab_map_grant_ref.DOM, "gnttab_map_grant_ref.status": A.gnttab_map_grant_ref.STATUS,
  "gnttab_map_grant_ref.handle": A.gnttab_map_grant_ref.HANDLE, "gnttab_map_grant_ref.dev_bus_addr": A.gnttab_map_grant_ref.DEV_BUS_ADDR,
  "sizeof.gnttab_unmap_grant_ref": A.gnttab_unmap_grant_ref.SIZE, "gnttab_unmap_grant_ref.host_addr": A.gnttab_unmap_grant_ref.HOST_ADDR,
  "gnttab_unmap_grant_ref.dev_bus_addr": A.gnttab_unmap_grant_ref.DEV_BUS_ADDR, "gnttab_unmap_grant_ref.handle": A.gnttab_unmap_grant_ref.HANDLE,
  "gnttab_unmap_grant_ref.status": A.gnttab_unmap_grant_ref.STATUS,
  "sizeof.gnttab_setup_table": A.gnttab_setup_table.SIZE, "gnttab_setup_table.dom": A.gnttab_setup_table.DOM,
  "gnttab_setup_table.nr_frames": A.gnttab_setup_table.NR_FRAMES, "gnttab_setup_table.status": A.gnttab_setup_table.STATUS,
  "gnttab_setup_table.frame_list": A.gnttab_setup_table.FRAME_LIST,
  "sizeof.gnttab_copy": A.gnttab_copy.SIZE, "gnttab_copy.source.u.ref": A.gnttab_copy.SOURCE_REF, "gnttab_copy.source.domid": A.gnttab_copy.SOURCE_DOMID,
  "gnttab_copy.source.offset": A.gnttab_copy.SOURCE_OFFSET, "gnttab_copy.dest.u.ref": A.gnttab_copy.DEST_REF,
  "gnttab_copy.dest.domid": A.gnttab_copy.DEST_DOMID, "gnttab_copy.dest.offset": A.gnttab_copy.DEST_OFFSET,
  "gnttab_copy.len": A.gnttab_copy.LEN, "gnttab_copy.flags": A.gnttab_copy.FLAGS, "gnttab_copy.status": A.gnttab_copy.STATUS,
  "sizeof.gnttab_query_size": A.gnttab_query_size.SIZE, "gnttab_query_size.dom": A.gnttab_query_size.DOM,
  "gnttab_query_size.nr_frames": A.gnttab_query_size.NR_FRAMES, "gnttab_query_size.max_nr_frames": A.gnttab_query_size.MAX_NR_FRAMES,
  "gnttab_query_size.status": A.gnttab_query_size.STATUS,
  "gnttab_dump_table.dom": A.gnttab_dump_table.DOM, "gnttab_dump_table.status": A.gnttab_dump_table.STATUS,
  "gnttab_set_version.version": A.gnttab_set_version.VERSION, "gnttab_get_version.dom": A.gnttab_get_version.DOM,
  "gnttab_get_version.version": A.gnttab_get_version.VERSION,
  "evtchn_op.cmd": A.evtchn_op.CMD, "evtchn_op.u": A.evtchn_op.U, "physdev_op.cmd": A.physdev_op.CMD, "physdev_op.u": A.physdev_op.U,
  "sizeof.gnttab_transfer": A.gnttab_transfer.SIZE, "gnttab_transfer.mfn": A.gnttab_transfer.MFN, "gnttab_transfer.domid": A.gnttab_transfer.DOMID,
  "gnttab_transfer.ref": A.gnttab_transfer.REF, "gnttab_transfer.status": A.gnttab_transfer.STATUS,
  "sizeof.xen_memory_reservation": A.xen_memory_reservation.SIZE, "xen_memory_reservation.extent_start": A.xen_memory_reservation.EXTENT_START,
  "xen_memory_reservation.nr_extents": A.xen_memory_reservation.NR_EXTENTS, "xen_memory_reservation.extent_order": A.xen_memory_reservation.EXTENT_ORDER,
  "xen_memory_reservation.mem_flags": A.xen_memory_reservation.MEM_FLAGS, "xen_memory_reservation.domid": A.xen_memory_reservation.DOMID,
  ...consts("XENMEM_", XENMEM),
  GNTTAB_RESERVED_CONSOLE: GNTTAB_RESERVED.CONSOLE, GNTTAB_RESERVED_XENSTORE: GNTTAB_RESERVED.XENSTORE,
  "sched_shutdown.reason": A.sched_shutdown.REASON, "physdev_eoi.irq": A.physdev_eoi.IRQ,
  "physdev_irq_status_query.irq": A.physdev_irq_status_query.IRQ, "physdev_irq_status_query.flags": A.physdev_irq_status_query.FLAGS,
  "sizeof.mmu_update": A.mmu_update.SIZE, "mmu_update.ptr": A.mmu_update.PTR, "mmu_update.val": A.mmu_update.VAL,
  ...consts("MMU_", MMU),
  "sizeof.mmuext_op": A.mmuext_op.SIZE, "mmuext_op.cmd": A.mmuext_op.CMD, "mmuext_op.arg1": A.mmuext_op.ARG1, "mmuext_op.arg2": A.mmuext_op.ARG2,
  ...consts("MMUEXT_", MMUEXT),
  ...consts("UVMF_", UVMF),
  "sizeof.start_info": START_INFO.SIZE, "start_info.magic": START_INFO.MAGIC, "start_info.nr_pages": START_INFO.NR_PAGES,
  "start_info.shared_info": START_INFO.SHARED_INFO, "start_info.flags": START_INFO.FLAGS, "start_info.store_mfn": START_INFO.STORE_MFN,
  "start_info.store_evtchn": START_INFO.STORE_EVTCHN, "start_info.console.domU.mfn": START_INFO.CONSOLE_MFN,
  "start_info.console.domU.evtchn": START_INFO.CONSOLE_EVTCHN, "start_info.pt_base": START_INFO.PT_BASE,
  "start_info.nr_pt_frames": START_INFO.NR_PT_FRAMES, "start_info.mfn_list": START_INFO.MFN_LIST, "start_info.mod_start": START_INFO.MOD_START,
  "start_info.mod_len": START_INFO.MOD_LEN, "start_info.cmd_line": START_INFO.CMD_LINE, "start_info.first_p2m_pfn": START_INFO.FIRST_P2M_PFN,
  "start_info.nr_p2m_frames": START_INFO.NR_P2M_FRAMES, MAX_GUEST_CMDLINE: START_INFO.MAX_GUEST_CMDLINE,
  SIF_PRIVILEGED: SIF.PRIVILEGED, SIF_INITDOMAIN: SIF.INITDOMAIN,
  FLAT_RING1_CS: FLAT_RING1.CS, FLAT_RING1_DS: FLAT_RING1.DS, FLAT_RING1_SS: FLAT_RING1.SS,
  __HYPERVISOR_VIRT_START_PAE: HYPERVISOR_VIRT_START_PAE,
  ...consts("XEN_ELFNOTE_", XEN_ELFNOTE),
  ...consts("__HYPERVISOR_", HYPERVISOR),
  ...consts("SCHEDOP_", SCHEDOP),
  ...consts("SHUTDOWN_", SHUTDOWN),
  ...consts("CONSOLEIO_", CONSOLEIO),
  ...consts("XENVER_", XENVER),
  ...consts("VMASST_", VMASST),
  // pci_cfgreg_read/write are Xen 2.0's and gone from today's physdev.h.
  ...consts("PHYSDEVOP_", PHYSDEVOP, ["pci_cfgreg_read", "pci_cfgreg_write"]),
  ...consts("XENIRQSTAT_", XENIRQSTAT),
  ...consts("XEN_DOMCTL_", DOMCTL),
};

describe("hypervisor-core's ABI against Xen's public headers (x86_32)", () => {
  it("has every TypeScript value equal to the header's", () => {
    const mismatches = Object.entries(ours).filter(([k, v]) => fixture.x86_32[k] !== v);
    expect(mismatches).toEqual([]);
  });

  it("leaves no header value without a TypeScript counterpart", () => {
    expect(Object.keys(fixture.x86_32).filter((k) => !(k in ours))).toEqual([]);
  });

  const gcc = externalTool("gcc -m32", () => commandWorks("gcc", ["-m32", "-E", "-x", "c", "/dev/null"]), "apt-get install gcc-multilib");
  it.skipIf(gcc.skip)("is what Xen's headers produce (regenerated with gcc -m32 from libxen-dev)", () => {
    gcc.check();
    const pkg = debianPackage("libxen-dev");
    if (pkg === undefined) throw new Error("apt-get download libxen-dev failed");
    const out = join(mkdtempSync(join(tmpdir(), "hv-abi-")), "hv-abi.json");
    execFileSync(join(import.meta.dirname, "..", "scripts", "gen-abi-fixture.sh"), [out, join(pkg, "usr", "include")], { stdio: "pipe" });
    const fresh = JSON.parse(readFileSync(out, "utf8")) as { x86_32: Record<string, number> };
    expect(fresh.x86_32).toEqual(fixture.x86_32);
  }, 300_000);
});
