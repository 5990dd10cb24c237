import { GRANT_ENTRY_V1, GTF } from "@paravirt/device-channel";
import { GrantError, type GrantMapping } from "@paravirt/vm-interfaces";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { InMemoryXen } from "../src/index.ts";

describe("grant table properties", () => {
  it("endAccess succeeds exactly when no mapping is held; flags track the pins", () => {
    const op = fc.oneof(
      fc.record({ k: fc.constant("grant" as const), ro: fc.boolean() }),
      fc.record({ k: fc.constant("map" as const), i: fc.nat(), w: fc.boolean(), by: fc.constantFrom(0, 2) }),
      fc.record({ k: fc.constant("unmap" as const), i: fc.nat() }),
      fc.record({ k: fc.constant("end" as const), i: fc.nat() }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const xen = new InMemoryXen();
        const d0 = xen.createDomain(0);
        const dU = xen.createDomain(1);
        const d2 = xen.createDomain(2);
        const page = dU.pages.allocPage();
        const grants: { ref: number; ro: boolean; grantee: number }[] = [];
        const maps: { m: GrantMapping; by: typeof d0; ref: number }[] = [];
        for (const o of ops) {
          if (o.k === "grant") grants.push({ ref: dU.gnttab.grantAccess(o.ro ? 2 : 0, page.frame, o.ro), ro: o.ro, grantee: o.ro ? 2 : 0 });
          else if (o.k === "map" && grants.length) {
            const g = grants[o.i % grants.length]!;
            const by = o.by === 0 ? d0 : d2;
            const ok = by.domid === g.grantee && !(o.w && g.ro);
            try {
              maps.push({ m: by.gnttab.map(1, g.ref, o.w), by, ref: g.ref });
              expect(ok).toBe(true);
            } catch (e) {
              expect(e).toBeInstanceOf(GrantError);
              expect(ok).toBe(false);
            }
          } else if (o.k === "unmap" && maps.length) {
            const [x] = maps.splice(o.i % maps.length, 1);
            x!.by.gnttab.unmap(x!.m);
          } else if (o.k === "end" && grants.length) {
            const idx = o.i % grants.length;
            const g = grants[idx]!;
            const mapped = maps.some((x) => x.ref === g.ref);
            expect(dU.gnttab.endAccess(g.ref)).toBe(!mapped);
            if (!mapped) grants.splice(idx, 1);
          }
          for (const g of grants) {
            const flags = dU.gnttab.frames.getUint16(g.ref * GRANT_ENTRY_V1.SIZE, true);
            const mine = maps.filter((x) => x.ref === g.ref);
            expect((flags & GTF.reading) !== 0).toBe(mine.length > 0);
            expect((flags & GTF.writing) !== 0).toBe(mine.some((x) => x.m.writable));
          }
        }
        expect(d0.gnttab.mappingsHeld + d2.gnttab.mappingsHeld).toBe(maps.length);
        expect(dU.gnttab.grantsInUse).toBe(grants.length);
      }),
      { seed: 42, numRuns: 300 },
    );
  });
});

describe("event channel properties", () => {
  it("every burst of sends is delivered at least once and at most once per burst", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 1, maxLength: 20 }), async (bursts) => {
        const xen = new InMemoryXen();
        const d0 = xen.createDomain(0);
        const dU = xen.createDomain(1);
        const p = dU.evtchn.allocUnbound(0);
        const b = d0.evtchn.bindInterdomain(1, p);
        let calls = 0;
        dU.evtchn.onEvent(p, () => calls++);
        let expected = 0;
        for (const n of bursts) {
          for (let i = 0; i < n; i++) d0.evtchn.notify(b);
          await xen.settle();
          if (n > 0) expected++;
          expect(calls).toBe(expected);
        }
      }),
      { seed: 7, numRuns: 50 },
    );
  });
});
