/**
 * Every offset, size and constant of device-channel (and the Xen vocabulary of vm-interfaces)
 * against Xen's own public headers: test/fixtures/xen-abi.json is written by
 * scripts/gen-abi-fixture.sh from Debian's libxen-dev with gcc -m32 and -m64. Under CI the
 * fixture is regenerated from the installed headers and must match the committed one.
 */
import { describe, expect, it } from "vitest";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DOMID, GNTST, XEN_ERRNO } from "@paravirt/vm-interfaces";
import { externalTool } from "@paravirt/test-support";
import {
  BLKIF_DISCARD_SECURE, BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST, BLKIF_MAX_SEGMENTS_PER_REQUEST, BLKIF_OP, BLKIF_RSP,
  BLKIF_SEGMENT, BLKIF_X86_32, BLKIF_X86_64, EVTCHNOP, EVTCHNSTAT, GNTCOPY, GNTMAP, GNTTABOP, GRANT_ENTRY_V1, GTF,
  NETIF_EXTRA_INFO, NETIF_RSP, NETIF_RX_ENTRY_SIZE, NETIF_RX_REQUEST, NETIF_RX_RESPONSE, NETIF_TX_ENTRY_SIZE,
  NETIF_TX_REQUEST, NETIF_TX_RESPONSE, NETRXF, NETTXF, NR_VIRQS, SRING, VDISK, VIRQ, XENCONS_INTERFACE,
  XENSTORE_ABS_PATH_MAX, XENSTORE_CONNECTION, XENSTORE_DOMAIN_INTERFACE, XENSTORE_ERROR, XENSTORE_PAYLOAD_MAX,
  XENSTORE_REL_PATH_MAX, XENSTORE_RING_SIZE, XENSTORE_SERVER_FEATURE, XENBUS_STATE, XEN_IO_PROTO_ABI,
  XEN_NETIF_EXTRA_FLAG_MORE, XEN_NETIF_EXTRA_TYPE, XEN_NETIF_GSO_TYPE, XEN_NETIF_MAX_TX_SIZE, XEN_NETIF_NR_SLOTS_MIN,
  XS, XSD_SOCKMSG, ringSize, type BlkifLayout,
} from "../src/index.ts";

const fixturePath = join(import.meta.dirname, "fixtures", "xen-abi.json");
const fixture = JSON.parse(readFileSync(fixturePath, "utf8")) as Record<"x86_32" | "x86_64", Record<string, number | string>>;

function prefixed(prefix: string, o: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [`${prefix}${k}`, v]));
}

/** The TypeScript side, keyed like scripts/xen-abi.c prints. */
function ours(b: BlkifLayout): Record<string, number | string> {
  return {
    "blkif_sring.req_prod": SRING.REQ_PROD, "blkif_sring.req_event": SRING.REQ_EVENT,
    "blkif_sring.rsp_prod": SRING.RSP_PROD, "blkif_sring.rsp_event": SRING.RSP_EVENT,
    "blkif_sring.pvt": SRING.PVT, "blkif_sring.ring": SRING.HEADER_SIZE,
    "ring_size.blkif.1page": ringSize(4096, b.entrySize), "ring_size.blkif.4pages": ringSize(4 * 4096, b.entrySize),
    "ring_size.netif_tx.1page": ringSize(4096, NETIF_TX_ENTRY_SIZE), "ring_size.netif_rx.1page": ringSize(4096, NETIF_RX_ENTRY_SIZE),
    "sizeof.blkif_sring_entry": b.entrySize, "sizeof.netif_tx_sring_entry": NETIF_TX_ENTRY_SIZE,
    "sizeof.netif_rx_sring_entry": NETIF_RX_ENTRY_SIZE,
    "sizeof.blkif_request": b.request.SIZE, "blkif_request.operation": b.request.OPERATION,
    "blkif_request.nr_segments": b.request.NR_SEGMENTS, "blkif_request.handle": b.request.HANDLE,
    "blkif_request.id": b.request.ID, "blkif_request.sector_number": b.request.SECTOR_NUMBER, "blkif_request.seg": b.request.SEG,
    "sizeof.blkif_request_segment": BLKIF_SEGMENT.SIZE, "blkif_request_segment.gref": BLKIF_SEGMENT.GREF,
    "blkif_request_segment.first_sect": BLKIF_SEGMENT.FIRST_SECT, "blkif_request_segment.last_sect": BLKIF_SEGMENT.LAST_SECT,
    "sizeof.blkif_request_discard": b.discard.SIZE, "blkif_request_discard.flag": b.discard.FLAG,
    "blkif_request_discard.handle": b.discard.HANDLE, "blkif_request_discard.id": b.discard.ID,
    "blkif_request_discard.sector_number": b.discard.SECTOR_NUMBER, "blkif_request_discard.nr_sectors": b.discard.NR_SECTORS,
    "sizeof.blkif_request_indirect": b.indirect.SIZE, "blkif_request_indirect.indirect_op": b.indirect.INDIRECT_OP,
    "blkif_request_indirect.nr_segments": b.indirect.NR_SEGMENTS, "blkif_request_indirect.id": b.indirect.ID,
    "blkif_request_indirect.sector_number": b.indirect.SECTOR_NUMBER, "blkif_request_indirect.handle": b.indirect.HANDLE,
    "blkif_request_indirect.indirect_grefs": b.indirect.INDIRECT_GREFS,
    "sizeof.blkif_response": b.response.SIZE, "blkif_response.id": b.response.ID,
    "blkif_response.operation": b.response.OPERATION, "blkif_response.status": b.response.STATUS,
    ...prefixed("BLKIF_OP_", BLKIF_OP), ...prefixed("BLKIF_RSP_", BLKIF_RSP),
    BLKIF_MAX_SEGMENTS_PER_REQUEST, BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST, BLKIF_DISCARD_SECURE,
    ...prefixed("VDISK_", VDISK),
    XEN_IO_PROTO_ABI_X86_32: XEN_IO_PROTO_ABI.X86_32, XEN_IO_PROTO_ABI_X86_64: XEN_IO_PROTO_ABI.X86_64,
    "sizeof.netif_tx_request": NETIF_TX_REQUEST.SIZE, "netif_tx_request.gref": NETIF_TX_REQUEST.GREF,
    "netif_tx_request.offset": NETIF_TX_REQUEST.OFFSET, "netif_tx_request.flags": NETIF_TX_REQUEST.FLAGS,
    "netif_tx_request.id": NETIF_TX_REQUEST.ID, "netif_tx_request.size": NETIF_TX_REQUEST.SIZE_FIELD,
    "sizeof.netif_tx_response": NETIF_TX_RESPONSE.SIZE, "netif_tx_response.id": NETIF_TX_RESPONSE.ID,
    "netif_tx_response.status": NETIF_TX_RESPONSE.STATUS,
    "sizeof.netif_rx_request": NETIF_RX_REQUEST.SIZE, "netif_rx_request.id": NETIF_RX_REQUEST.ID,
    "netif_rx_request.gref": NETIF_RX_REQUEST.GREF,
    "sizeof.netif_rx_response": NETIF_RX_RESPONSE.SIZE, "netif_rx_response.id": NETIF_RX_RESPONSE.ID,
    "netif_rx_response.offset": NETIF_RX_RESPONSE.OFFSET, "netif_rx_response.flags": NETIF_RX_RESPONSE.FLAGS,
    "netif_rx_response.status": NETIF_RX_RESPONSE.STATUS,
    "sizeof.netif_extra_info": NETIF_EXTRA_INFO.SIZE, "netif_extra_info.type": NETIF_EXTRA_INFO.TYPE,
    "netif_extra_info.flags": NETIF_EXTRA_INFO.FLAGS, "netif_extra_info.u.gso.size": NETIF_EXTRA_INFO.GSO_SIZE,
    "netif_extra_info.u.gso.type": NETIF_EXTRA_INFO.GSO_TYPE, "netif_extra_info.u.gso.features": NETIF_EXTRA_INFO.GSO_FEATURES,
    "netif_extra_info.u.mcast.addr": NETIF_EXTRA_INFO.MCAST_ADDR, "netif_extra_info.u.hash.type": NETIF_EXTRA_INFO.HASH_TYPE,
    "netif_extra_info.u.hash.algorithm": NETIF_EXTRA_INFO.HASH_ALGORITHM, "netif_extra_info.u.hash.value": NETIF_EXTRA_INFO.HASH_VALUE,
    ...prefixed("NETTXF_", NETTXF), ...prefixed("NETRXF_", NETRXF), ...prefixed("NETIF_RSP_", NETIF_RSP),
    ...prefixed("XEN_NETIF_EXTRA_TYPE_", XEN_NETIF_EXTRA_TYPE), XEN_NETIF_EXTRA_FLAG_MORE,
    ...prefixed("XEN_NETIF_GSO_TYPE_", XEN_NETIF_GSO_TYPE), XEN_NETIF_NR_SLOTS_MIN, XEN_NETIF_MAX_TX_SIZE,
    "sizeof.grant_entry_v1": GRANT_ENTRY_V1.SIZE, "grant_entry_v1.flags": GRANT_ENTRY_V1.FLAGS,
    "grant_entry_v1.domid": GRANT_ENTRY_V1.DOMID, "grant_entry_v1.frame": GRANT_ENTRY_V1.FRAME,
    ...prefixed("GTF_", GTF), ...prefixed("GNTTABOP_", GNTTABOP), ...prefixed("GNTMAP_", GNTMAP),
    ...prefixed("GNTCOPY_", GNTCOPY), ...prefixed("GNTST_", GNTST),
    ...prefixed("EVTCHNOP_", EVTCHNOP), ...prefixed("EVTCHNSTAT_", EVTCHNSTAT), ...prefixed("VIRQ_", VIRQ), NR_VIRQS,
    ...prefixed("DOMID_", DOMID), ...prefixed("XenbusState", XENBUS_STATE), ...prefixed("XS_", XS),
    "sizeof.xsd_sockmsg": XSD_SOCKMSG.SIZE, "xsd_sockmsg.type": XSD_SOCKMSG.TYPE, "xsd_sockmsg.req_id": XSD_SOCKMSG.REQ_ID,
    "xsd_sockmsg.tx_id": XSD_SOCKMSG.TX_ID, "xsd_sockmsg.len": XSD_SOCKMSG.LEN,
    "sizeof.xenstore_domain_interface": XENSTORE_DOMAIN_INTERFACE.SIZE,
    "xenstore_domain_interface.req": XENSTORE_DOMAIN_INTERFACE.REQ, "xenstore_domain_interface.rsp": XENSTORE_DOMAIN_INTERFACE.RSP,
    "xenstore_domain_interface.req_cons": XENSTORE_DOMAIN_INTERFACE.REQ_CONS,
    "xenstore_domain_interface.req_prod": XENSTORE_DOMAIN_INTERFACE.REQ_PROD,
    "xenstore_domain_interface.rsp_cons": XENSTORE_DOMAIN_INTERFACE.RSP_CONS,
    "xenstore_domain_interface.rsp_prod": XENSTORE_DOMAIN_INTERFACE.RSP_PROD,
    "xenstore_domain_interface.server_features": XENSTORE_DOMAIN_INTERFACE.SERVER_FEATURES,
    "xenstore_domain_interface.connection": XENSTORE_DOMAIN_INTERFACE.CONNECTION,
    "xenstore_domain_interface.error": XENSTORE_DOMAIN_INTERFACE.ERROR,
    XENSTORE_RING_SIZE, XENSTORE_PAYLOAD_MAX, XENSTORE_ABS_PATH_MAX, XENSTORE_REL_PATH_MAX,
    ...prefixed("XENSTORE_SERVER_FEATURE_", XENSTORE_SERVER_FEATURE), XENSTORE_CONNECTED: XENSTORE_CONNECTION.CONNECTED,
    XENSTORE_RECONNECT: XENSTORE_CONNECTION.RECONNECT, ...prefixed("XENSTORE_ERROR_", XENSTORE_ERROR),
    "sizeof.xencons_interface": XENCONS_INTERFACE.SIZE, "xencons_interface.in": XENCONS_INTERFACE.IN,
    "xencons_interface.out": XENCONS_INTERFACE.OUT, "xencons_interface.in_cons": XENCONS_INTERFACE.IN_CONS,
    "xencons_interface.in_prod": XENCONS_INTERFACE.IN_PROD, "xencons_interface.out_cons": XENCONS_INTERFACE.OUT_CONS,
    "xencons_interface.out_prod": XENCONS_INTERFACE.OUT_PROD,
    ...prefixed("errno.", XEN_ERRNO),
  };
}

/** Header names that TS deliberately spells differently or leaves out, with the reason. */
const ALIASES = new Set(["errno.EWOULDBLOCK", "errno.EDEADLOCK", "XS_INVALID"]);

describe.each(["x86_32", "x86_64"] as const)("Xen public headers, %s", (abi) => {
  const layout = abi === "x86_32" ? BLKIF_X86_32 : BLKIF_X86_64;
  const mine = ours(layout);
  const theirs = fixture[abi];

  it("has every TypeScript value equal to the header's", () => {
    const diffs = Object.entries(mine)
      .filter(([k, v]) => theirs[k] !== v)
      .map(([k, v]) => `${k}: ours ${v}, header ${theirs[k]}`);
    expect(diffs).toEqual([]);
  });

  it("leaves no header value without a TypeScript counterpart", () => {
    const missing = Object.keys(theirs).filter((k) => !(k in mine) && !ALIASES.has(k));
    expect(missing).toEqual([]);
  });
});

const gccM32 = externalTool(
  "gcc -m32 with Xen headers",
  () => existsSync("/usr/include/xen/io/blkif.h") && spawnSync("gcc", ["-m32", "-x", "c", "-c", "-o", "/dev/null", "/dev/null"]).status === 0,
  "apt-get install gcc-multilib libxen-dev",
);

describe("the committed fixture", () => {
  it.skipIf(gccM32.skip)("is what the installed headers produce (regenerated with gcc -m32/-m64)", () => {
    gccM32.check();
    const out = join(mkdtempSync(join(tmpdir(), "xen-abi-")), "xen-abi.json");
    execFileSync("bash", [join(import.meta.dirname, "..", "scripts", "gen-abi-fixture.sh"), out], { stdio: "pipe" });
    const fresh = JSON.parse(readFileSync(out, "utf8"));
    expect(fresh.x86_32).toEqual(fixture.x86_32);
    expect(fresh.x86_64).toEqual(fixture.x86_64);
  });
});
