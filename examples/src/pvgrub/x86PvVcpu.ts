/**
 * cpu-x86 as the hypervisor's x86 PV vCPU: an `X86Cpu` on the machine memory (the guest's
 * page tables hold machine frame numbers, so the CPU's "physical" space is machine memory),
 * `int 0x82` intercepted as the hypercall trap, ring 1 with Xen's flat selectors, PAE paging
 * with CR3 loaded by the hypervisor (NEW_BASEPTR) in Xen's extended format
 * [xen-x86_32.h xen_pfn_to_cr3], and the hypervisor's guest-virtual view of memory for
 * hypercall arguments (`pagingVirtualMemory`).
 *
 * The guest has no IDT (a PV guest registers its traps with set_trap_table; PV GRUB never
 * does), so any exception ends in a triple fault, which the scheduler reports as a crash.
 */
import { CR0, CR4, FLAG, SEG, X86Cpu } from "@paravirt/cpu-x86";
import { cr3ToMfn, pagingVirtualMemory, registerFile, type GuestVirtualMemory, type Hypervisor, type PvBootState, type PvPaging, type PvVcpu, type X86Registers } from "@paravirt/hypervisor-core";
import type { VcpuExit } from "@paravirt/vm-interfaces";

/** The hypercall trap vector of 32-bit PV guests [xen/arch/x86/x86_32/entry.S, HYPERCALL_VECTOR]. */
export const HYPERCALL_VECTOR = 0x82;

/** Flat 4 GiB ring-1 descriptors' access rights [xen/arch/x86/desc.c: 0x00cfbb00_0000ffff, 0x00cfb300_0000ffff]. */
const RING1_CODE_ATTR = 0xc0bb;
const RING1_DATA_ATTR = 0xc0b3;

/** A hypercall as the guest issued it (registers at the trap). */
export interface HypercallTrap {
  /** EAX: hypercall number. */
  nr: number;
  /** EBX, ECX, EDX, ESI, EDI: arguments 1-5. */
  args: [number, number, number, number, number];
  /** EIP after the `int 0x82`. */
  eip: number;
}

export interface X86PvVcpu extends PvVcpu {
  readonly cpu: X86Cpu;
  /** Loads the builder's initial state: ring 1, flat selectors, PAE paging on its CR3. */
  boot(state: PvBootState): void;
  /** Count of hypercalls by number. */
  readonly hypercallCounts: Map<number, number>;
  /** The last exit that was not a hypercall or a budget end (crash diagnostics). */
  lastUnusualExit: (VcpuExit & { eip: number; cr2: number; exception: number }) | undefined;
}

export interface X86PvVcpuOptions {
  /** Called at each hypercall trap before the hypervisor handles it. */
  onHypercall?: (trap: HypercallTrap) => void;
}

/** Creates the vCPU on `hv`'s machine memory. Pass it to `buildPvDomain`, then call `boot`. */
export function createX86PvVcpu(hv: Hypervisor, options: X86PvVcpuOptions = {}): X86PvVcpu {
  const cpu = new X86Cpu({ memory: hv.memory });
  cpu.interceptVector(HYPERCALL_VECTOR);
  let cr3 = 0;
  const paging: PvPaging = {
    get cr3() {
      return cr3;
    },
    loadCr3(value: number) {
      cr3 = value >>> 0;
      cpu.setCr3(cr3ToMfn(cr3) * 4096);
    },
    flushTlb() {
      // A PV guest has no global pages here; always drop the whole TLB.
      cpu.flushTlb(true);
    },
    invlpg(va: number) {
      cpu.invlpg(va >>> 0);
    },
  };
  const regs: X86Registers = registerFile(cpu.regs);
  const memory: GuestVirtualMemory = pagingVirtualMemory(hv.memory, paging);
  const hypercallCounts = new Map<number, number>();
  const onHypercall = options.onHypercall;
  const vcpu: X86PvVcpu = {
    cpu,
    regs,
    memory,
    paging,
    hypercallCounts,
    lastUnusualExit: undefined,
    get instructionsRetired() {
      return cpu.instructionsRetired;
    },
    requestStop: () => cpu.requestStop(),
    run(budget: number): VcpuExit {
      // The CPU's TSC counts its retired instructions; offset it so that it reads the machine's
      // TSC (system time at the hypervisor's tscHz, what vcpu_time_info's tsc_timestamp and
      // mul/shift describe) when the slice starts. At 1 ns per instruction and 1 GHz it stays in step.
      cpu.tsc = hv.time.tscAt(hv.clock.now()) - cpu.instructionsRetired;
      const exit = cpu.run(budget);
      if (exit.reason === "intercept" && exit.vector === HYPERCALL_VECTOR) {
        const nr = regs.eax;
        hypercallCounts.set(nr, (hypercallCounts.get(nr) ?? 0) + 1);
        onHypercall?.({ nr, args: [regs.ebx, regs.ecx, regs.edx, regs.esi, regs.edi], eip: cpu.eipU });
      } else if (exit.reason !== "budget" && exit.reason !== "stopped") {
        vcpu.lastUnusualExit = { ...exit, eip: cpu.eipU, cr2: cpu.cr2 >>> 0, exception: cpu.lastException };
      }
      return exit;
    },
    boot(state: PvBootState) {
      cpu.setCr4(CR4.PAE);
      cpu.setCr0(cpu.cr0 | CR0.PE | CR0.PG | CR0.WP);
      paging.loadCr3(state.cr3);
      cpu.setSegment(SEG.CS, { selector: state.cs, base: 0, limit: 0xffffffff, attributes: RING1_CODE_ATTR });
      for (const s of [SEG.DS, SEG.ES, SEG.FS, SEG.GS]) cpu.setSegment(s, { selector: state.ds, base: 0, limit: 0xffffffff, attributes: RING1_DATA_ATTR });
      cpu.setSegment(SEG.SS, { selector: state.ss, base: 0, limit: 0xffffffff, attributes: RING1_DATA_ATTR });
      // No guest IDT: any exception escalates to a triple fault (a crash of the domain).
      cpu.idtrBase = 0;
      cpu.idtrLimit = 0;
      cpu.gdtrBase = 0;
      cpu.gdtrLimit = 0;
      cpu.writeFlags(state.eflags | FLAG.IF, -1);
      cpu.regs.fill(0);
      cpu.regs[4] = state.esp | 0;
      cpu.regs[6] = state.esi | 0;
      cpu.eip = state.eip | 0;
    },
  };
  return vcpu;
}
