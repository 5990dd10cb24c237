/*
 * Prints, as one JSON object, the x86_32 offsets, sizes and constants of the Xen hypercall
 * ABI that hypervisor-core implements (shared_info, hypercall argument structs, hypercall and
 * sub-op numbers), as gcc -m32 lays them out from Debian's libxen-dev headers. Run by
 * gen-abi-fixture.sh; test/xenHeaders.test.ts compares the TypeScript side with the result.
 */
#define __XEN_INTERFACE_VERSION__ __XEN_LATEST_INTERFACE_VERSION__
#define __XEN_TOOLS__ 1
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <xen/xen.h>
#include <xen/event_channel.h>
#include <xen/grant_table.h>
#include <xen/sched.h>
#include <xen/physdev.h>
#include <xen/version.h>
#include <xen/domctl.h>
#include <xen/elfnote.h>
#include <xen/memory.h>

static int first = 1;
static void num(const char *k, long long v) { printf("%s\n  \"%s\": %lld", first ? "" : ",", k, v); first = 0; }
#define OFF(t, f) num(#t "." #f, (long long)offsetof(struct t, f))
#define SZ(t) num("sizeof." #t, (long long)sizeof(struct t))
#define K(c) num(#c, (long long)(c))

int main(void) {
  printf("{");
  /* xen.h: shared_info, vcpu_info, vcpu_time_info; arch-x86: arch_shared_info */
  SZ(shared_info); OFF(shared_info, vcpu_info); OFF(shared_info, evtchn_pending); OFF(shared_info, evtchn_mask);
  OFF(shared_info, wc_version); OFF(shared_info, wc_sec); OFF(shared_info, wc_nsec); OFF(shared_info, arch);
  OFF(shared_info, arch.max_pfn);
  SZ(vcpu_info); OFF(vcpu_info, evtchn_upcall_pending); OFF(vcpu_info, evtchn_upcall_mask);
  OFF(vcpu_info, evtchn_pending_sel); OFF(vcpu_info, arch); OFF(vcpu_info, time);
  SZ(vcpu_time_info); OFF(vcpu_time_info, version); OFF(vcpu_time_info, tsc_timestamp); OFF(vcpu_time_info, system_time);
  OFF(vcpu_time_info, tsc_to_system_mul); OFF(vcpu_time_info, tsc_shift); OFF(vcpu_time_info, flags);
  K(XEN_LEGACY_MAX_VCPUS);
  num("EVTCHN_2L_NR_CHANNELS", sizeof(xen_ulong_t) * sizeof(xen_ulong_t) * 64);
  /* event_channel.h */
  SZ(evtchn_alloc_unbound); OFF(evtchn_alloc_unbound, dom); OFF(evtchn_alloc_unbound, remote_dom); OFF(evtchn_alloc_unbound, port);
  SZ(evtchn_bind_interdomain); OFF(evtchn_bind_interdomain, remote_dom); OFF(evtchn_bind_interdomain, remote_port); OFF(evtchn_bind_interdomain, local_port);
  SZ(evtchn_bind_virq); OFF(evtchn_bind_virq, virq); OFF(evtchn_bind_virq, vcpu); OFF(evtchn_bind_virq, port);
  SZ(evtchn_bind_pirq); OFF(evtchn_bind_pirq, pirq); OFF(evtchn_bind_pirq, flags); OFF(evtchn_bind_pirq, port);
  SZ(evtchn_bind_ipi); OFF(evtchn_bind_ipi, vcpu); OFF(evtchn_bind_ipi, port);
  OFF(evtchn_close, port); OFF(evtchn_send, port); OFF(evtchn_unmask, port);
  SZ(evtchn_status); OFF(evtchn_status, dom); OFF(evtchn_status, port); OFF(evtchn_status, status); OFF(evtchn_status, vcpu);
  OFF(evtchn_status, u.unbound.dom); OFF(evtchn_status, u.interdomain.dom); OFF(evtchn_status, u.interdomain.port);
  OFF(evtchn_status, u.pirq); OFF(evtchn_status, u.virq);
  OFF(evtchn_op, cmd); OFF(evtchn_op, u);
  OFF(physdev_op, cmd); OFF(physdev_op, u);
  /* grant_table.h */
  SZ(gnttab_map_grant_ref); OFF(gnttab_map_grant_ref, host_addr); OFF(gnttab_map_grant_ref, flags); OFF(gnttab_map_grant_ref, ref);
  OFF(gnttab_map_grant_ref, dom); OFF(gnttab_map_grant_ref, status); OFF(gnttab_map_grant_ref, handle); OFF(gnttab_map_grant_ref, dev_bus_addr);
  SZ(gnttab_unmap_grant_ref); OFF(gnttab_unmap_grant_ref, host_addr); OFF(gnttab_unmap_grant_ref, dev_bus_addr);
  OFF(gnttab_unmap_grant_ref, handle); OFF(gnttab_unmap_grant_ref, status);
  SZ(gnttab_setup_table); OFF(gnttab_setup_table, dom); OFF(gnttab_setup_table, nr_frames); OFF(gnttab_setup_table, status); OFF(gnttab_setup_table, frame_list);
  SZ(gnttab_copy); OFF(gnttab_copy, source.u.ref); OFF(gnttab_copy, source.domid); OFF(gnttab_copy, source.offset);
  OFF(gnttab_copy, dest.u.ref); OFF(gnttab_copy, dest.domid); OFF(gnttab_copy, dest.offset);
  OFF(gnttab_copy, len); OFF(gnttab_copy, flags); OFF(gnttab_copy, status);
  SZ(gnttab_query_size); OFF(gnttab_query_size, dom); OFF(gnttab_query_size, nr_frames); OFF(gnttab_query_size, max_nr_frames); OFF(gnttab_query_size, status);
  OFF(gnttab_dump_table, dom); OFF(gnttab_dump_table, status);
  OFF(gnttab_set_version, version); OFF(gnttab_get_version, dom); OFF(gnttab_get_version, version);
  SZ(gnttab_transfer); OFF(gnttab_transfer, mfn); OFF(gnttab_transfer, domid); OFF(gnttab_transfer, ref); OFF(gnttab_transfer, status);
  SZ(xen_memory_reservation); OFF(xen_memory_reservation, extent_start); OFF(xen_memory_reservation, nr_extents);
  OFF(xen_memory_reservation, extent_order); OFF(xen_memory_reservation, mem_flags); OFF(xen_memory_reservation, domid);
  K(XENMEM_increase_reservation); K(XENMEM_decrease_reservation); K(XENMEM_maximum_ram_page); K(XENMEM_current_reservation);
  K(XENMEM_maximum_reservation); K(XENMEM_populate_physmap);
  K(GNTTAB_RESERVED_CONSOLE); K(GNTTAB_RESERVED_XENSTORE);
  /* xen.h mmu_update */
  SZ(mmu_update); OFF(mmu_update, ptr); OFF(mmu_update, val);
  K(MMU_NORMAL_PT_UPDATE); K(MMU_MACHPHYS_UPDATE); K(MMU_PT_UPDATE_PRESERVE_AD);
  SZ(mmuext_op); OFF(mmuext_op, cmd); OFF(mmuext_op, arg1); OFF(mmuext_op, arg2);
  K(MMUEXT_PIN_L1_TABLE); K(MMUEXT_PIN_L2_TABLE); K(MMUEXT_PIN_L3_TABLE); K(MMUEXT_PIN_L4_TABLE); K(MMUEXT_UNPIN_TABLE);
  K(MMUEXT_NEW_BASEPTR); K(MMUEXT_TLB_FLUSH_LOCAL); K(MMUEXT_INVLPG_LOCAL); K(MMUEXT_TLB_FLUSH_MULTI); K(MMUEXT_INVLPG_MULTI);
  K(MMUEXT_TLB_FLUSH_ALL); K(MMUEXT_INVLPG_ALL);
  K(UVMF_NONE); K(UVMF_TLB_FLUSH); K(UVMF_INVLPG); K(UVMF_FLUSHTYPE_MASK); K(UVMF_ALL);
  /* start_info (x86_32) */
  SZ(start_info); OFF(start_info, magic); OFF(start_info, nr_pages); OFF(start_info, shared_info); OFF(start_info, flags);
  OFF(start_info, store_mfn); OFF(start_info, store_evtchn); OFF(start_info, console.domU.mfn); OFF(start_info, console.domU.evtchn);
  OFF(start_info, pt_base); OFF(start_info, nr_pt_frames); OFF(start_info, mfn_list); OFF(start_info, mod_start);
  OFF(start_info, mod_len); OFF(start_info, cmd_line); OFF(start_info, first_p2m_pfn); OFF(start_info, nr_p2m_frames);
  K(SIF_PRIVILEGED); K(SIF_INITDOMAIN); K(MAX_GUEST_CMDLINE);
  K(FLAT_RING1_CS); K(FLAT_RING1_DS); K(FLAT_RING1_SS); K(__HYPERVISOR_VIRT_START_PAE);
  /* sched.h, physdev.h */
  OFF(sched_shutdown, reason);
  OFF(physdev_eoi, irq); OFF(physdev_irq_status_query, irq); OFF(physdev_irq_status_query, flags);
  /* hypercall numbers [xen.h] */
  K(__HYPERVISOR_set_trap_table); K(__HYPERVISOR_mmu_update); K(__HYPERVISOR_set_gdt); K(__HYPERVISOR_stack_switch);
  K(__HYPERVISOR_set_callbacks); K(__HYPERVISOR_fpu_taskswitch); K(__HYPERVISOR_sched_op_compat); K(__HYPERVISOR_platform_op);
  K(__HYPERVISOR_set_debugreg); K(__HYPERVISOR_get_debugreg); K(__HYPERVISOR_update_descriptor); K(__HYPERVISOR_memory_op);
  K(__HYPERVISOR_multicall); K(__HYPERVISOR_update_va_mapping); K(__HYPERVISOR_set_timer_op); K(__HYPERVISOR_event_channel_op_compat);
  K(__HYPERVISOR_xen_version); K(__HYPERVISOR_console_io); K(__HYPERVISOR_physdev_op_compat); K(__HYPERVISOR_grant_table_op);
  K(__HYPERVISOR_vm_assist); K(__HYPERVISOR_update_va_mapping_otherdomain); K(__HYPERVISOR_iret); K(__HYPERVISOR_vcpu_op);
  K(__HYPERVISOR_set_segment_base); K(__HYPERVISOR_mmuext_op); K(__HYPERVISOR_xsm_op); K(__HYPERVISOR_nmi_op);
  K(__HYPERVISOR_sched_op); K(__HYPERVISOR_callback_op); K(__HYPERVISOR_xenoprof_op); K(__HYPERVISOR_event_channel_op);
  K(__HYPERVISOR_physdev_op); K(__HYPERVISOR_hvm_op); K(__HYPERVISOR_sysctl); K(__HYPERVISOR_domctl);
  K(SCHEDOP_yield); K(SCHEDOP_block); K(SCHEDOP_shutdown); K(SCHEDOP_poll); K(SCHEDOP_remote_shutdown); K(SCHEDOP_shutdown_code); K(SCHEDOP_watchdog);
  K(SHUTDOWN_poweroff); K(SHUTDOWN_reboot); K(SHUTDOWN_suspend); K(SHUTDOWN_crash); K(SHUTDOWN_watchdog);
  K(CONSOLEIO_write); K(CONSOLEIO_read);
  K(XENVER_version); K(XENVER_extraversion); K(XENVER_compile_info); K(XENVER_capabilities); K(XENVER_changeset);
  K(XENVER_platform_parameters); K(XENVER_get_features); K(XENVER_pagesize);
  K(VMASST_CMD_enable); K(VMASST_CMD_disable); K(VMASST_TYPE_4gb_segments); K(VMASST_TYPE_4gb_segments_notify);
  K(VMASST_TYPE_writable_pagetables); K(VMASST_TYPE_pae_extended_cr3);
  K(PHYSDEVOP_irq_status_query); K(PHYSDEVOP_set_iopl); K(PHYSDEVOP_set_iobitmap); K(PHYSDEVOP_eoi);
  K(XENIRQSTAT_needs_eoi); K(XENIRQSTAT_shared);
  K(XEN_ELFNOTE_ENTRY); K(XEN_ELFNOTE_HYPERCALL_PAGE); K(XEN_ELFNOTE_VIRT_BASE); K(XEN_ELFNOTE_PADDR_OFFSET);
  K(XEN_ELFNOTE_XEN_VERSION); K(XEN_ELFNOTE_GUEST_OS); K(XEN_ELFNOTE_GUEST_VERSION); K(XEN_ELFNOTE_LOADER);
  K(XEN_ELFNOTE_PAE_MODE); K(XEN_ELFNOTE_FEATURES);
  K(XEN_DOMCTL_createdomain); K(XEN_DOMCTL_destroydomain); K(XEN_DOMCTL_pausedomain); K(XEN_DOMCTL_unpausedomain);
  printf("\n}\n");
  return 0;
}
