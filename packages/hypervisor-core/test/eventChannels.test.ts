import { EVTCHNSTAT } from "@paravirt/device-channel";
import { XEN_ERRNO, XenError } from "@paravirt/vm-interfaces";
import { describe, expect, it } from "vitest";
import { Hypervisor, SHARED_INFO, VCPU_INFO } from "../src/index.ts";

function errno(fn: () => unknown): number | undefined {
  try {
    fn();
  } catch (e) {
    if (e instanceof XenError) return e.errno;
    throw e;
  }
  return undefined;
}

function pair() {
  const hv = new Hypervisor({ memoryFrames: 512 });
  const a = hv.createNativeDomain({ name: "a", memoryPages: 16 });
  const b = hv.createNativeDomain({ name: "b", memoryPages: 16 });
  const st = { aPort: -1, bPort: -1, aHits: 0 };
  a.post(() => {
    st.aPort = a.evtchn.allocUnbound(b.domid);
    a.evtchn.onEvent(st.aPort, () => st.aHits++);
  });
  hv.run();
  b.post(() => {
    st.bPort = b.evtchn.bindInterdomain(a.domid, st.aPort);
  });
  hv.run();
  st.aHits = 0;
  return { hv, a, b, st };
}

describe("event channels (2-level ABI)", () => {
  it("never hands out port 0; ports are reused after close", () => {
    const { hv, a, b, st } = pair();
    expect(st.aPort).toBeGreaterThan(0);
    expect(a.record.consolePort).toBe(1);
    const p = hv.hypercalls.evtchnBindIpi(a.record);
    expect(hv.hypercalls.evtchnClose(a.record, p)).toBe(0);
    expect(hv.hypercalls.evtchnBindIpi(a.record)).toBe(p);
    expect(hv.hypercalls.evtchnClose(a.record, 0)).toBe(-XEN_ERRNO.EINVAL);
    void b;
  });

  it("coalesces sends while pending: three notifies, one handler call", () => {
    const { hv, a, b, st } = pair();
    b.post(() => {
      b.evtchn.notify(st.bPort);
      b.evtchn.notify(st.bPort);
      b.evtchn.notify(st.bPort);
    });
    hv.run();
    expect(st.aHits).toBe(1);
    void a;
  });

  it("sets evtchn_pending, evtchn_pending_sel and upcall_pending in shared_info; mask holds delivery until unmask", () => {
    const { hv, a, b, st } = pair();
    a.post(() => a.evtchn.setMask(st.aPort, true));
    hv.run();
    const si = hv.memory.page(a.record.sharedInfoMfn);
    const dv = new DataView(si.buffer, si.byteOffset, 4096);
    expect(dv.getUint32(SHARED_INFO.EVTCHN_MASK, true) & (1 << st.aPort)).not.toBe(0);
    b.post(() => b.evtchn.notify(st.bPort));
    hv.run();
    expect(st.aHits).toBe(0);
    expect(dv.getUint32(SHARED_INFO.EVTCHN_PENDING, true) & (1 << st.aPort)).not.toBe(0);
    expect(dv.getUint32(VCPU_INFO.PENDING_SEL, true)).toBe(0); // masked: selector untouched
    expect(si[VCPU_INFO.UPCALL_PENDING]).toBe(0);
    a.post(() => a.evtchn.setMask(st.aPort, false)); // EVTCHNOP_unmask re-raises it
    hv.run();
    expect(st.aHits).toBe(1);
    expect(dv.getUint32(SHARED_INFO.EVTCHN_PENDING, true) & (1 << st.aPort)).toBe(0);
  });

  it("checks binds: only the named remote may bind, once; virq twice is EEXIST", () => {
    const { hv, a, b, st } = pair();
    const c = hv.createNativeDomain({ name: "c", memoryPages: 16 });
    const offered = hv.hypercalls.evtchnAllocUnbound(a.record, 0x7ff0, b.domid);
    expect(hv.hypercalls.evtchnBindInterdomain(c.record, a.domid, offered)).toBe(-XEN_ERRNO.EINVAL); // offered to b, not c
    expect(hv.hypercalls.evtchnBindInterdomain(b.record, a.domid, st.aPort)).toBe(-XEN_ERRNO.EINVAL); // already bound
    expect(hv.hypercalls.evtchnBindInterdomain(b.record, 999, 1)).toBe(-XEN_ERRNO.ESRCH);
    expect(hv.hypercalls.evtchnBindVirq(a.record, 1)).toBeGreaterThan(0);
    expect(hv.hypercalls.evtchnBindVirq(a.record, 1)).toBe(-XEN_ERRNO.EEXIST);
    expect(hv.hypercalls.evtchnBindVirq(a.record, 99)).toBe(-XEN_ERRNO.EINVAL);
    // Another domain's ports: status and alloc need privilege.
    expect(hv.hypercalls.evtchnStatus(c.record, a.domid, st.aPort)).toBe(-XEN_ERRNO.EPERM);
    expect(hv.hypercalls.evtchnAllocUnbound(c.record, a.domid, c.domid)).toBe(-XEN_ERRNO.EPERM);
  });

  it("close unbinds the peer's end: its sends fail, and it may be bound again", () => {
    const { hv, a, b, st } = pair();
    b.post(() => b.evtchn.close(st.bPort));
    hv.run();
    expect(a.portStatus(st.aPort)).toEqual({ status: EVTCHNSTAT.unbound, vcpu: 0, dom: b.domid });
    expect(errno(() => a.evtchn.notify(st.aPort))).toBe(XEN_ERRNO.EINVAL);
    expect(errno(() => b.evtchn.notify(st.bPort))).toBe(XEN_ERRNO.EINVAL);
    let again = -1;
    b.post(() => {
      again = b.evtchn.bindInterdomain(a.domid, st.aPort);
      b.evtchn.notify(again);
    });
    hv.run();
    expect(again).toBeGreaterThan(0);
    expect(st.aHits).toBe(1);
  });

  it("handlers run in the receiver's context, later, never inside the sender's call", () => {
    const { hv, a, b, st } = pair();
    let during = -1;
    b.post(() => {
      b.evtchn.notify(st.bPort);
      during = st.aHits;
    });
    hv.run();
    expect(during).toBe(0);
    expect(st.aHits).toBe(1);
  });
});

describe("consoles", () => {
  it("a domain's console ring is drained by the hypervisor and readable from dom0 only", () => {
    const hv = new Hypervisor({ memoryFrames: 512 });
    const dom0 = hv.createNativeDomain({ name: "dom0", privileged: true, memoryPages: 16 });
    const u = hv.createNativeDomain({ name: "u", memoryPages: 16 });
    const long = "x".repeat(5000); // more than the 2048-byte ring: written in pieces
    u.post(() => u.consoleWrite(`hello from d${u.domid}\n${long}\n`));
    hv.run();
    expect(dom0.readConsole(u.domid)).toBe(`hello from d1\n${long}\n`);
    expect(() => u.readConsole(dom0.domid)).toThrow(XenError);
    // CONSOLEIO_write to the hypervisor's own console: privileged only.
    expect(hv.hypercalls.consoleWrite(u.record, "x")).toBe(-XEN_ERRNO.EPERM);
    expect(hv.hypercalls.consoleWrite(dom0.record, "(XEN) hi\n")).toBe(0);
    expect(hv.consoleOutput).toBe("(XEN) hi\n");
    hv.serialInput("abc");
    expect(hv.hypercalls.consoleRead(dom0.record, 2)).toBe("ab");
    expect(hv.hypercalls.consoleRead(dom0.record, 10)).toBe("c");
    expect(hv.hypercalls.consoleRead(u.record, 10)).toBe(-XEN_ERRNO.EPERM);
  });

  it("console input reaches the domain through its in ring and console port", () => {
    const hv = new Hypervisor({ memoryFrames: 256 });
    const u = hv.createNativeDomain({ name: "u", memoryPages: 16 });
    const got: string[] = [];
    u.post(() => u.onConsoleInput((t) => got.push(t)));
    hv.run();
    expect(hv.consoleInput(u.domid, "boot\n")).toBe(5);
    hv.run();
    expect(got).toEqual(["boot\n"]);
  });
});
