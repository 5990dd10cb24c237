/*
 * Prints, as one JSON object, the offsets, sizes and constants of Xen's public I/O ABI as the
 * C compiler lays them out from Debian's libxen-dev headers. Built twice (gcc -m32, -m64) by
 * gen-abi-fixture.sh; the device-channel tests compare the TypeScript layouts with the result.
 */
/* The newest interface: grant v2 ops and every sub-op are visible. */
#define __XEN_INTERFACE_VERSION__ __XEN_LATEST_INTERFACE_VERSION__
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <xen/xen.h>
#include <xen/grant_table.h>
#include <xen/event_channel.h>
#include <xen/io/ring.h>
#include <xen/io/blkif.h>
#include <xen/io/netif.h>
#include <xen/io/console.h>
#include <xen/io/xs_wire.h>
#include <xen/io/xenbus.h>
#include <xen/io/protocols.h>

static int first = 1;
static void num(const char *k, long long v) { printf("%s\n  \"%s\": %lld", first ? "" : ",", k, v); first = 0; }
static void str(const char *k, const char *v) { printf("%s\n  \"%s\": \"%s\"", first ? "" : ",", k, v); first = 0; }
#define OFF(t, f) num(#t "." #f, (long long)offsetof(struct t, f))
#define SZ(t) num("sizeof." #t, (long long)sizeof(struct t))
#define K(c) num(#c, (long long)(c))

int main(void) {
  printf("{");
  /* io/ring.h */
  OFF(blkif_sring, req_prod); OFF(blkif_sring, req_event); OFF(blkif_sring, rsp_prod); OFF(blkif_sring, rsp_event);
  OFF(blkif_sring, pvt); OFF(blkif_sring, ring);
  num("ring_size.blkif.1page", __RING_SIZE((struct blkif_sring *)0, 4096));
  num("ring_size.blkif.4pages", __RING_SIZE((struct blkif_sring *)0, 4 * 4096));
  num("ring_size.netif_tx.1page", __RING_SIZE((struct netif_tx_sring *)0, 4096));
  num("ring_size.netif_rx.1page", __RING_SIZE((struct netif_rx_sring *)0, 4096));
  num("sizeof.blkif_sring_entry", sizeof(union blkif_sring_entry));
  num("sizeof.netif_tx_sring_entry", sizeof(union netif_tx_sring_entry));
  num("sizeof.netif_rx_sring_entry", sizeof(union netif_rx_sring_entry));
  /* io/blkif.h */
  SZ(blkif_request); OFF(blkif_request, operation); OFF(blkif_request, nr_segments); OFF(blkif_request, handle);
  OFF(blkif_request, id); OFF(blkif_request, sector_number); OFF(blkif_request, seg);
  SZ(blkif_request_segment); OFF(blkif_request_segment, gref); OFF(blkif_request_segment, first_sect); OFF(blkif_request_segment, last_sect);
  SZ(blkif_request_discard); OFF(blkif_request_discard, flag); OFF(blkif_request_discard, handle); OFF(blkif_request_discard, id);
  OFF(blkif_request_discard, sector_number); OFF(blkif_request_discard, nr_sectors);
  SZ(blkif_request_indirect); OFF(blkif_request_indirect, indirect_op); OFF(blkif_request_indirect, nr_segments);
  OFF(blkif_request_indirect, id); OFF(blkif_request_indirect, sector_number); OFF(blkif_request_indirect, handle);
  OFF(blkif_request_indirect, indirect_grefs);
  SZ(blkif_response); OFF(blkif_response, id); OFF(blkif_response, operation); OFF(blkif_response, status);
  K(BLKIF_OP_READ); K(BLKIF_OP_WRITE); K(BLKIF_OP_WRITE_BARRIER); K(BLKIF_OP_FLUSH_DISKCACHE); K(BLKIF_OP_RESERVED_1);
  K(BLKIF_OP_DISCARD); K(BLKIF_OP_INDIRECT); K(BLKIF_MAX_SEGMENTS_PER_REQUEST); K(BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST);
  K(BLKIF_RSP_EOPNOTSUPP); K(BLKIF_RSP_ERROR); K(BLKIF_RSP_OKAY); K(BLKIF_DISCARD_SECURE);
  K(VDISK_CDROM); K(VDISK_REMOVABLE); K(VDISK_READONLY);
  str("XEN_IO_PROTO_ABI_X86_32", XEN_IO_PROTO_ABI_X86_32); str("XEN_IO_PROTO_ABI_X86_64", XEN_IO_PROTO_ABI_X86_64);
  /* io/netif.h */
  SZ(netif_tx_request); OFF(netif_tx_request, gref); OFF(netif_tx_request, offset); OFF(netif_tx_request, flags);
  OFF(netif_tx_request, id); OFF(netif_tx_request, size);
  SZ(netif_tx_response); OFF(netif_tx_response, id); OFF(netif_tx_response, status);
  SZ(netif_rx_request); OFF(netif_rx_request, id); OFF(netif_rx_request, gref);
  SZ(netif_rx_response); OFF(netif_rx_response, id); OFF(netif_rx_response, offset); OFF(netif_rx_response, flags); OFF(netif_rx_response, status);
  SZ(netif_extra_info); OFF(netif_extra_info, type); OFF(netif_extra_info, flags);
  OFF(netif_extra_info, u.gso.size); OFF(netif_extra_info, u.gso.type); OFF(netif_extra_info, u.gso.features);
  OFF(netif_extra_info, u.mcast.addr); OFF(netif_extra_info, u.hash.type); OFF(netif_extra_info, u.hash.algorithm); OFF(netif_extra_info, u.hash.value);
  K(NETTXF_csum_blank); K(NETTXF_data_validated); K(NETTXF_more_data); K(NETTXF_extra_info);
  K(NETRXF_data_validated); K(NETRXF_csum_blank); K(NETRXF_more_data); K(NETRXF_extra_info); K(NETRXF_gso_prefix);
  K(NETIF_RSP_DROPPED); K(NETIF_RSP_ERROR); K(NETIF_RSP_OKAY); K(NETIF_RSP_NULL);
  K(XEN_NETIF_EXTRA_TYPE_NONE); K(XEN_NETIF_EXTRA_TYPE_GSO); K(XEN_NETIF_EXTRA_TYPE_MCAST_ADD); K(XEN_NETIF_EXTRA_TYPE_MCAST_DEL);
  K(XEN_NETIF_EXTRA_TYPE_HASH); K(XEN_NETIF_EXTRA_TYPE_MAX); K(XEN_NETIF_EXTRA_FLAG_MORE);
  K(XEN_NETIF_GSO_TYPE_NONE); K(XEN_NETIF_GSO_TYPE_TCPV4); K(XEN_NETIF_GSO_TYPE_TCPV6);
  K(XEN_NETIF_NR_SLOTS_MIN); K(XEN_NETIF_MAX_TX_SIZE);
  /* grant_table.h */
  SZ(grant_entry_v1); OFF(grant_entry_v1, flags); OFF(grant_entry_v1, domid); OFF(grant_entry_v1, frame);
  K(GTF_invalid); K(GTF_permit_access); K(GTF_accept_transfer); K(GTF_transitive); K(GTF_type_mask);
  K(GTF_readonly); K(GTF_reading); K(GTF_writing); K(GTF_PWT); K(GTF_PCD); K(GTF_PAT); K(GTF_sub_page);
  K(GTF_transfer_committed); K(GTF_transfer_completed);
  K(GNTTABOP_map_grant_ref); K(GNTTABOP_unmap_grant_ref); K(GNTTABOP_setup_table); K(GNTTABOP_dump_table);
  K(GNTTABOP_transfer); K(GNTTABOP_copy); K(GNTTABOP_query_size); K(GNTTABOP_unmap_and_replace);
  K(GNTTABOP_set_version); K(GNTTABOP_get_status_frames); K(GNTTABOP_get_version); K(GNTTABOP_swap_grant_ref);
  K(GNTTABOP_cache_flush);
  K(GNTMAP_device_map); K(GNTMAP_host_map); K(GNTMAP_readonly); K(GNTMAP_application_map); K(GNTMAP_contains_pte);
  K(GNTCOPY_source_gref); K(GNTCOPY_dest_gref);
  K(GNTST_okay); K(GNTST_general_error); K(GNTST_bad_domain); K(GNTST_bad_gntref); K(GNTST_bad_handle);
  K(GNTST_bad_virt_addr); K(GNTST_bad_dev_addr); K(GNTST_no_device_space); K(GNTST_permission_denied);
  K(GNTST_bad_page); K(GNTST_bad_copy_arg); K(GNTST_address_too_big); K(GNTST_eagain); K(GNTST_no_space);
  /* event_channel.h, xen.h */
  K(EVTCHNOP_bind_interdomain); K(EVTCHNOP_bind_virq); K(EVTCHNOP_bind_pirq); K(EVTCHNOP_close); K(EVTCHNOP_send);
  K(EVTCHNOP_status); K(EVTCHNOP_alloc_unbound); K(EVTCHNOP_bind_ipi); K(EVTCHNOP_bind_vcpu); K(EVTCHNOP_unmask);
  K(EVTCHNOP_reset); K(EVTCHNOP_init_control); K(EVTCHNOP_expand_array); K(EVTCHNOP_set_priority);
  K(EVTCHNSTAT_closed); K(EVTCHNSTAT_unbound); K(EVTCHNSTAT_interdomain); K(EVTCHNSTAT_pirq); K(EVTCHNSTAT_virq); K(EVTCHNSTAT_ipi);
  K(VIRQ_TIMER); K(VIRQ_DEBUG); K(VIRQ_CONSOLE); K(VIRQ_DOM_EXC); K(VIRQ_TBUF); K(VIRQ_DEBUGGER); K(VIRQ_XENOPROF);
  K(VIRQ_CON_RING); K(VIRQ_PCPU_STATE); K(VIRQ_MEM_EVENT); K(VIRQ_ARGO); K(VIRQ_ENOMEM); K(VIRQ_XENPMU); K(NR_VIRQS);
  K(DOMID_FIRST_RESERVED); K(DOMID_SELF); K(DOMID_IO); K(DOMID_XEN); K(DOMID_COW); K(DOMID_INVALID); K(DOMID_IDLE);
  /* io/xenbus.h */
  K(XenbusStateUnknown); K(XenbusStateInitialising); K(XenbusStateInitWait); K(XenbusStateInitialised);
  K(XenbusStateConnected); K(XenbusStateClosing); K(XenbusStateClosed); K(XenbusStateReconfiguring); K(XenbusStateReconfigured);
  /* io/xs_wire.h */
  K(XS_CONTROL); K(XS_DIRECTORY); K(XS_READ); K(XS_GET_PERMS); K(XS_WATCH); K(XS_UNWATCH); K(XS_TRANSACTION_START);
  K(XS_TRANSACTION_END); K(XS_INTRODUCE); K(XS_RELEASE); K(XS_GET_DOMAIN_PATH); K(XS_WRITE); K(XS_MKDIR); K(XS_RM);
  K(XS_SET_PERMS); K(XS_WATCH_EVENT); K(XS_ERROR); K(XS_IS_DOMAIN_INTRODUCED); K(XS_RESUME); K(XS_SET_TARGET);
  K(XS_RESET_WATCHES); K(XS_DIRECTORY_PART); K(XS_TYPE_COUNT); K(XS_INVALID);
  SZ(xsd_sockmsg); OFF(xsd_sockmsg, type); OFF(xsd_sockmsg, req_id); OFF(xsd_sockmsg, tx_id); OFF(xsd_sockmsg, len);
  SZ(xenstore_domain_interface); OFF(xenstore_domain_interface, req); OFF(xenstore_domain_interface, rsp);
  OFF(xenstore_domain_interface, req_cons); OFF(xenstore_domain_interface, req_prod); OFF(xenstore_domain_interface, rsp_cons);
  OFF(xenstore_domain_interface, rsp_prod); OFF(xenstore_domain_interface, server_features);
  OFF(xenstore_domain_interface, connection); OFF(xenstore_domain_interface, error);
  K(XENSTORE_RING_SIZE); K(XENSTORE_PAYLOAD_MAX); K(XENSTORE_ABS_PATH_MAX); K(XENSTORE_REL_PATH_MAX);
  K(XENSTORE_SERVER_FEATURE_RECONNECTION); K(XENSTORE_SERVER_FEATURE_ERROR); K(XENSTORE_CONNECTED); K(XENSTORE_RECONNECT);
  K(XENSTORE_ERROR_NONE); K(XENSTORE_ERROR_COMM); K(XENSTORE_ERROR_RINGIDX); K(XENSTORE_ERROR_PROTO);
  /* io/console.h */
  SZ(xencons_interface); OFF(xencons_interface, in); OFF(xencons_interface, out); OFF(xencons_interface, in_cons);
  OFF(xencons_interface, in_prod); OFF(xencons_interface, out_cons); OFF(xencons_interface, out_prod);
  /* errno.h: expanded with our XEN_ERRNO() in scope */
#define XEN_ERRNO(name, value) num("errno." #name, value);
#include <xen/errno.h>
  printf("\n}\n");
  return 0;
}
