/**
 * A request/response channel between two native domains, written the way split drivers do
 * it: the front end grants a ring page and allocates an unbound port; the back end maps the
 * grant and binds the port; both use io/ring.h rings from @paravirt/device-channel.
 * Requests are {u32 seq, u32 value}; responses {u32 seq, u32 value + 1}.
 */
import { BackRing, FrontRing } from "@paravirt/device-channel";
import type { GrantMapping, GrantRef, Port } from "@paravirt/vm-interfaces";
import type { NativeDomain } from "../src/index.ts";

export const ENTRY = 8;

export interface FrontState {
  sent: number;
  received: number;
  errors: number;
  gref: GrantRef;
  port: Port;
  pageFrame: number;
  stopped: boolean;
}

export interface BackState {
  served: number;
  mapping: GrantMapping | undefined;
  port: Port;
}

/** Starts the front end in `front`; it hands (gref, port) to `back` by posting a task there. */
export function startPair(front: NativeDomain, back: NativeDomain, total: number): { f: FrontState; b: BackState } {
  const f: FrontState = { sent: 0, received: 0, errors: 0, gref: -1, port: -1, pageFrame: -1, stopped: false };
  const b: BackState = { served: 0, mapping: undefined, port: -1 };
  front.post(() => {
    const page = front.pages.allocPage();
    f.pageFrame = page.frame;
    const ring = FrontRing.init(page.bytes, ENTRY);
    const dv = ring.view;
    f.gref = front.gnttab.grantAccess(back.domid, page.frame, false);
    f.port = front.evtchn.allocUnbound(back.domid);
    const pump = () => {
      if (f.stopped) return;
      for (;;) {
        let off: number | undefined;
        while ((off = ring.takeResponse()) !== undefined) {
          const seq = dv.getUint32(off, true);
          const v = dv.getUint32(off + 4, true);
          if (seq !== f.received || v !== ((seq * 7 + 1) >>> 0)) f.errors++;
          f.received++;
        }
        while (f.sent < total && !ring.full()) {
          const o = ring.nextRequest();
          dv.setUint32(o, f.sent, true);
          dv.setUint32(o + 4, (f.sent * 7) >>> 0, true);
          f.sent++;
        }
        if (ring.pushRequestsAndCheckNotify()) {
          try {
            front.evtchn.notify(f.port);
          } catch {
            f.stopped = true; // the back end went away
            return;
          }
        }
        if (f.received >= total || !ring.finalCheckForResponses()) return;
      }
    };
    front.evtchn.onEvent(f.port, pump);
    const gref = f.gref;
    const port = f.port;
    back.post(() => {
      const m = back.gnttab.map(front.domid, gref, true);
      b.mapping = m;
      const br = BackRing.attach(m.bytes, ENTRY);
      const bv = br.view;
      b.port = back.evtchn.bindInterdomain(front.domid, port);
      back.evtchn.onEvent(b.port, () => {
        for (;;) {
          let n = br.pendingRequests();
          if (n < 0) return;
          while (n-- > 0) {
            const off = br.takeRequest()!;
            const seq = bv.getUint32(off, true);
            const v = bv.getUint32(off + 4, true);
            const r = br.nextResponse();
            bv.setUint32(r, seq, true);
            bv.setUint32(r + 4, (v + 1) >>> 0, true);
            b.served++;
          }
          if (br.pushResponsesAndCheckNotify()) {
            try {
              back.evtchn.notify(b.port);
            } catch {
              return; // the front end went away
            }
          }
          if (!br.finalCheckForRequests()) return;
        }
      });
      // "Connected": tell the front end (xenstore's job in a full system).
      front.post(pump);
    });
  });
  return { f, b };
}
