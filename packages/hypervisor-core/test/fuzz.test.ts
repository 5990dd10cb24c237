/**
 * Guest input never throws: random hypercalls (x86 register path with random argument memory,
 * and typed calls with random arguments) leave the hypervisor consistent.
 */
import fc from "fast-check";
import { GNTMAP } from "@paravirt/device-channel";
import type { VcpuExit } from "@paravirt/vm-interfaces";
import { describe, expect, it } from "vitest";
import { Hypervisor, HYPERVISOR, identityVirtualMemory, registerFile, type PvVcpu } from "../src/index.ts";

const idle: PvVcpu = {
  regs: registerFile(new Int32Array(8)),
  memory: identityVirtualMemory({ read() {}, write() {}, readU8: () => 0, readU16: () => 0, readU32: () => 0, writeU8() {}, writeU16() {}, writeU32() {} }),
  run: (): VcpuExit => ({ reason: "halt", executed: 1 }),
  requestStop() {},
  instructionsRetired: 0,
};

function invariants(hv: Hypervisor): void {
  const mem = hv.memory;
  let owned = 0;
  for (let f = 0; f < mem.frameCount; f++) if (mem.owner[f] !== -1) owned++;
  expect(owned + mem.freeFrames).toBe(mem.frameCount);
  for (const d of hv.domains()) {
    for (const m of d.maptrack) if (m !== undefined) expect(mem.refs[m.mfn]).toBeGreaterThan(0);
    for (const [ref, a] of d.activeGrants) {
      expect(a.readPins + a.writePins).toBeGreaterThan(0);
      expect(ref).toBeLessThan(hv.gnttab.entries(d));
    }
  }
}

const small = fc.oneof(fc.integer({ min: 0, max: 16 }), fc.integer({ min: 0x7ff0, max: 0x7fff }), fc.nat(), fc.constant(0xffffffff));

describe("guest input never throws", () => {
  it("random x86 hypercalls with random argument memory", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            nr: fc.oneof(fc.constantFrom(...Object.values(HYPERVISOR)), fc.nat(64)),
            ebx: small,
            ecx: small,
            edx: small,
            esi: small,
            bytes: fc.uint8Array({ minLength: 64, maxLength: 64 }),
          }),
          { maxLength: 40 },
        ),
        (calls) => {
          const hv = new Hypervisor({ memoryFrames: 256 });
          const dom0 = hv.createNativeDomain({ name: "dom0", privileged: true, memoryPages: 16 });
          dom0.post(() => {
            const p = dom0.pages.allocPage();
            dom0.gnttab.grantAccess(1, p.frame, false);
          });
          hv.run();
          const pv = hv.createPvDomain({ name: "pv", memoryPages: 16, vcpu: idle });
          const mem = hv.pseudoPhysical(pv.domid);
          const vm = identityVirtualMemory(mem);
          for (const c of calls) {
            if (!pv.alive) break;
            // Arguments point into the guest's first pages; fill them with the random bytes.
            mem.write(0x1000, c.bytes);
            const regs = { eax: c.nr, ebx: c.ebx, ecx: c.ecx % 2 === 0 ? 0x1000 : c.ecx, edx: c.edx, esi: c.esi, edi: 0, ebp: 0 };
            if (c.nr === HYPERVISOR.event_channel_op || c.nr === HYPERVISOR.physdev_op) regs.ecx = 0x1000;
            if (c.nr === HYPERVISOR.grant_table_op) {
              regs.ecx = 0x1000;
              regs.edx = c.edx % 4;
            }
            hv.hypercalls.x86(pv, regs, vm);
            expect(regs.eax).toBeGreaterThanOrEqual(0);
          }
          hv.run(hv.clock.now() + 1_000_000);
          invariants(hv);
          hv.destroy(pv.domid);
          invariants(hv);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("random typed calls from a native domain", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(11), small, small, small), { maxLength: 60 }),
        (ops) => {
          const hv = new Hypervisor({ memoryFrames: 256 });
          const a = hv.createNativeDomain({ name: "a", memoryPages: 16 });
          const b = hv.createNativeDomain({ name: "b", memoryPages: 16 });
          const hc = hv.hypercalls;
          const d = a.record;
          b.post(() => {
            const p = b.pages.allocPage();
            b.gnttab.grantAccess(a.domid, p.frame, true);
          });
          hv.run();
          for (const [op, x, y, z] of ops) {
            switch (op) {
              case 0: hc.evtchnAllocUnbound(d, x, y); break;
              case 1: hc.evtchnBindInterdomain(d, x, y); break;
              case 2: hc.evtchnSend(d, x); break;
              case 3: hc.evtchnClose(d, x); break;
              case 4: hc.evtchnUnmask(d, x); break;
              case 5: hc.gnttabMapGrantRef(d, x, y, GNTMAP.host_map | (z & GNTMAP.readonly)); break;
              case 6: hc.gnttabUnmapGrantRef(d, x); break;
              case 7: hc.gnttabCopy(d, [{ source: { ref: x, domid: y, offset: z }, dest: { frame: x, offset: y }, length: z }]); break;
              case 8: hc.physdevEoi(d, x); break;
              case 9: hc.setTimerOp(d, x); break;
              case 10: hc.evtchnBindVirq(d, x, y); break;
              default: hc.gnttabSetupTable(d, x, y); break;
            }
          }
          hv.run(hv.clock.now() + 10_000_000);
          invariants(hv);
          hv.destroy(b.domid);
          hv.destroy(a.domid);
          invariants(hv);
          expect(hv.memory.freeFrames).toBe(256);
        },
      ),
      { numRuns: 300 },
    );
  });
});
