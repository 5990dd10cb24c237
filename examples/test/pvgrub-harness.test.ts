/**
 * The PV domU harness of src/pvgrub/ with tiny hand-made PV kernels (no external tools): an
 * unknown hypercall answers -ENOSYS and SCHEDOP_shutdown stops the run; a guest exception (there is
 * no guest IDT) is a crash reported with the faulting EIP and CR2.
 */
import { RamDisk } from "@paravirt/disk-image";
import { SHUTDOWN } from "@paravirt/hypervisor-core";
import { describe, expect, it } from "vitest";
import { createPvGrubSystem, runPvGrub } from "../src/pvgrub/pvGrubSystem.ts";

/** An ELF32 i386 executable: one PT_LOAD at 0 (the whole file, memsz 0x2000) and a PT_NOTE with ENTRY and PAE_MODE "yes". */
function pvKernel(code: number[], entry = 0x200): Uint8Array {
  const f = new Uint8Array(0x400);
  const dv = new DataView(f.buffer);
  f.set([0x7f, 0x45, 0x4c, 0x46, 1, 1, 1], 0); // ELFCLASS32, ELFDATA2LSB, EV_CURRENT
  dv.setUint16(16, 2, true); // ET_EXEC
  dv.setUint16(18, 3, true); // EM_386
  dv.setUint32(20, 1, true);
  dv.setUint32(24, entry, true);
  dv.setUint32(28, 52, true); // e_phoff
  dv.setUint16(40, 52, true); // e_ehsize
  dv.setUint16(42, 32, true); // e_phentsize
  dv.setUint16(44, 2, true); // e_phnum
  const ph = (i: number, type: number, off: number, filesz: number, memsz: number) => {
    const o = 52 + i * 32;
    dv.setUint32(o, type, true);
    dv.setUint32(o + 4, off, true);
    dv.setUint32(o + 8, 0, true);
    dv.setUint32(o + 12, 0, true);
    dv.setUint32(o + 16, filesz, true);
    dv.setUint32(o + 20, memsz, true);
    dv.setUint32(o + 24, 7, true);
  };
  // Notes: name "Xen\0", ENTRY (1) = entry, PAE_MODE (9) = "yes\0".
  let n = 0x100;
  const note = (type: number, desc: number[]) => {
    dv.setUint32(n, 4, true);
    dv.setUint32(n + 4, desc.length, true);
    dv.setUint32(n + 8, type, true);
    f.set([0x58, 0x65, 0x6e, 0], n + 12);
    f.set(desc, n + 16);
    n += 16 + ((desc.length + 3) & ~3);
  };
  note(1, [entry & 0xff, (entry >> 8) & 0xff, 0, 0]);
  note(9, [0x79, 0x65, 0x73, 0]);
  ph(0, 1, 0, f.length, 0x2000);
  ph(1, 4, 0x100, n - 0x100, 0);
  f.set(code, entry);
  return f;
}

async function boot(code: number[]) {
  const sys = await createPvGrubSystem({ image: pvKernel(code), disk: RamDisk.from(new Uint8Array(1 << 20)), memoryPages: 2048 });
  return { sys, run: await runPvGrub(sys, { wallLimitMs: 20_000, instructionLimit: 1e6 }) };
}

describe("PV domU harness (tiny PV kernels)", () => {
  it("answers an unknown hypercall with -ENOSYS and stops on SCHEDOP_shutdown(poweroff)", async () => {
    const { run } = await boot([
      0xb8, 99, 0, 0, 0, // mov eax, 99 (no such hypercall)
      0xcd, 0x82, // int 0x82
      0x83, 0xf8, 0xda, // cmp eax, -38 (-ENOSYS)
      0x75, 0x1a, // jne fault
      0xc7, 0x05, 0x00, 0x18, 0, 0, 0, 0, 0, 0, // mov dword [0x1800], 0 (SHUTDOWN_poweroff)
      0xb8, 29, 0, 0, 0, // mov eax, 29 (sched_op)
      0xbb, 2, 0, 0, 0, // mov ebx, 2 (SCHEDOP_shutdown)
      0xb9, 0x00, 0x18, 0, 0, // mov ecx, 0x1800
      0xcd, 0x82, // int 0x82
      0xeb, 0xfe, // jmp $ (not reached)
      0xa1, 0x00, 0xf0, 0xff, 0x00, // fault: mov eax, [0xfff000]
    ]);
    expect(run.stop).toBe("shutdown");
    expect(run.shutdownReason).toBe(SHUTDOWN.poweroff);
    expect(run.hypercalls.get(99)).toBe(1);
    expect(run.instructions).toBe(9); // the fault path was not taken
  });

  it("a page fault (no guest IDT) crashes the domain and is reported with its EIP and CR2", async () => {
    const { sys, run } = await boot([
      0x90, // nop
      0xa1, 0x00, 0xf0, 0xff, 0x00, // mov eax, [0xfff000]: beyond the 4 MiB initial mapping
    ]);
    expect(run.stop).toBe("crash");
    expect(run.shutdownReason).toBe(SHUTDOWN.crash);
    expect(run.detail).toContain("triple-fault");
    expect(run.detail).toContain("eip 0x201");
    expect(run.detail).toContain("cr2 0xfff000");
    expect(run.log.some((l) => l.includes(`d${sys.domain.domid}: crashed`))).toBe(true);
  });
});
