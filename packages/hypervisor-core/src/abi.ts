/**
 * Hypercall numbers and sub-operation numbers the hypervisor implements. Event-channel and
 * grant-table sub-ops, VIRQs and GTF flags come from `@paravirt/device-channel`
 * (EVTCHNOP, GNTTABOP, VIRQ, GTF); they are not repeated here.
 */

/** `__HYPERVISOR_*` [xen/include/public/xen.h]. */
export const HYPERVISOR = {
  set_trap_table: 0,
  mmu_update: 1,
  set_gdt: 2,
  stack_switch: 3,
  set_callbacks: 4,
  fpu_taskswitch: 5,
  sched_op_compat: 6,
  platform_op: 7,
  set_debugreg: 8,
  get_debugreg: 9,
  update_descriptor: 10,
  memory_op: 12,
  multicall: 13,
  update_va_mapping: 14,
  set_timer_op: 15,
  event_channel_op_compat: 16,
  xen_version: 17,
  console_io: 18,
  physdev_op_compat: 19,
  grant_table_op: 20,
  vm_assist: 21,
  update_va_mapping_otherdomain: 22,
  iret: 23,
  vcpu_op: 24,
  set_segment_base: 25,
  mmuext_op: 26,
  xsm_op: 27,
  nmi_op: 28,
  sched_op: 29,
  callback_op: 30,
  xenoprof_op: 31,
  event_channel_op: 32,
  physdev_op: 33,
  hvm_op: 34,
  sysctl: 35,
  domctl: 36,
} as const;

/** `struct mmu_update` request types, in `ptr[1:0]` [xen.h MMU_*]. */
export const MMU = {
  NORMAL_PT_UPDATE: 0,
  MACHPHYS_UPDATE: 1,
  PT_UPDATE_PRESERVE_AD: 2,
} as const;

/** `XENMEM_*` sub-operations of memory_op [xen/include/public/memory.h]. */
export const XENMEM = {
  increase_reservation: 0,
  decrease_reservation: 1,
  maximum_ram_page: 2,
  current_reservation: 3,
  maximum_reservation: 4,
  populate_physmap: 6,
} as const;

/** `SCHEDOP_*` [xen/include/public/sched.h]. */
export const SCHEDOP = {
  yield: 0,
  block: 1,
  shutdown: 2,
  poll: 3,
  remote_shutdown: 4,
  shutdown_code: 5,
  watchdog: 6,
} as const;

/** `SHUTDOWN_*` reasons [sched.h]. */
export const SHUTDOWN = {
  poweroff: 0,
  reboot: 1,
  suspend: 2,
  crash: 3,
  watchdog: 4,
} as const;

/** `CONSOLEIO_*` [xen.h]. */
export const CONSOLEIO = {
  write: 0,
  read: 1,
} as const;

/** `XENVER_*` [xen/include/public/version.h]. */
export const XENVER = {
  version: 0,
  extraversion: 1,
  compile_info: 2,
  capabilities: 3,
  changeset: 4,
  platform_parameters: 5,
  get_features: 6,
  pagesize: 7,
} as const;

/** `VMASST_*` [xen.h]. */
export const VMASST = {
  CMD_enable: 0,
  CMD_disable: 1,
  TYPE_4gb_segments: 0,
  TYPE_4gb_segments_notify: 1,
  TYPE_writable_pagetables: 2,
  TYPE_pae_extended_cr3: 3,
} as const;

/**
 * `PHYSDEVOP_*` [xen/include/public/physdev.h]. The two config-space operations are Xen 2.0's
 * (`PHYSDEVOP_PCI_CFGREG_READ/WRITE`, physdev.h of Xen 2.0), kept for the checked
 * config-space interface of privileged domains; later Xen traps ports 0xCF8/0xCFC instead,
 * which {@link Hypervisor} also does for port accesses.
 */
export const PHYSDEVOP = {
  pci_cfgreg_read: 0,
  pci_cfgreg_write: 1,
  irq_status_query: 5,
  set_iopl: 6,
  set_iobitmap: 7,
  eoi: 12,
} as const;

/** `XENIRQSTAT_*` [physdev.h]. */
export const XENIRQSTAT = {
  needs_eoi: 1 << 0,
  shared: 1 << 1,
} as const;

/** `XEN_DOMCTL_*` the toolstack side uses [xen/include/public/domctl.h]. */
export const DOMCTL = {
  createdomain: 1,
  destroydomain: 2,
  pausedomain: 3,
  unpausedomain: 4,
} as const;

/** The version this hypervisor reports through XENVER_version (major << 16 | minor). */
export const XEN_VERSION = { major: 2, minor: 0 } as const;

/** Reserved grant references the toolstack seeds [xen/include/public/grant_table.h]. */
export const GNTTAB_RESERVED = {
  CONSOLE: 0,
  XENSTORE: 1,
} as const;

/** First grant reference a guest allocates itself (Linux NR_RESERVED_ENTRIES, drivers/xen/grant-table.c). */
export const GNTTAB_FIRST_FREE_REF = 8;

/**
 * x86_32 layouts of the hypercall argument structures the PV path decodes
 * [xen/include/public/event_channel.h, grant_table.h, sched.h, physdev.h]; every offset is
 * checked against gcc -m32 over Xen's headers by test/xenHeaders.test.ts.
 */
export const ARGS_X86_32 = {
  evtchn_alloc_unbound: { DOM: 0, REMOTE_DOM: 2, PORT: 4, SIZE: 8 },
  evtchn_bind_interdomain: { REMOTE_DOM: 0, REMOTE_PORT: 4, LOCAL_PORT: 8, SIZE: 12 },
  evtchn_bind_virq: { VIRQ: 0, VCPU: 4, PORT: 8, SIZE: 12 },
  evtchn_bind_pirq: { PIRQ: 0, FLAGS: 4, PORT: 8, SIZE: 12 },
  evtchn_bind_ipi: { VCPU: 0, PORT: 4, SIZE: 8 },
  /** evtchn_close / evtchn_send / evtchn_unmask */
  evtchn_port: { PORT: 0 },
  evtchn_status: { DOM: 0, PORT: 4, STATUS: 8, VCPU: 12, U_DOM: 16, U_PORT: 20, U_PIRQ: 16, U_VIRQ: 16, SIZE: 24 },
  gnttab_map_grant_ref: { HOST_ADDR: 0, FLAGS: 8, REF: 12, DOM: 16, STATUS: 18, HANDLE: 20, DEV_BUS_ADDR: 24, SIZE: 32 },
  gnttab_unmap_grant_ref: { HOST_ADDR: 0, DEV_BUS_ADDR: 8, HANDLE: 16, STATUS: 20, SIZE: 24 },
  gnttab_setup_table: { DOM: 0, NR_FRAMES: 4, STATUS: 8, FRAME_LIST: 12, SIZE: 16 },
  gnttab_copy: { SOURCE_REF: 0, SOURCE_DOMID: 4, SOURCE_OFFSET: 6, DEST_REF: 8, DEST_DOMID: 12, DEST_OFFSET: 14, LEN: 16, FLAGS: 18, STATUS: 20, SIZE: 24 },
  gnttab_query_size: { DOM: 0, NR_FRAMES: 4, MAX_NR_FRAMES: 8, STATUS: 12, SIZE: 16 },
  gnttab_dump_table: { DOM: 0, STATUS: 2 },
  gnttab_set_version: { VERSION: 0 },
  gnttab_get_version: { DOM: 0, VERSION: 4 },
  sched_shutdown: { REASON: 0 },
  physdev_eoi: { IRQ: 0 },
  physdev_irq_status_query: { IRQ: 0, FLAGS: 4 },
  /** struct evtchn_op (event_channel_op_compat, #16) [event_channel.h]: cmd, then the op's struct */
  evtchn_op: { CMD: 0, U: 4 },
  /** struct physdev_op (physdev_op_compat, #19) [physdev.h]: cmd, then the op's struct */
  physdev_op: { CMD: 0, U: 4 },
  /** struct gnttab_transfer [grant_table.h] */
  gnttab_transfer: { MFN: 0, DOMID: 4, REF: 8, STATUS: 12, SIZE: 16 },
  /** struct xen_memory_reservation [memory.h] */
  xen_memory_reservation: { EXTENT_START: 0, NR_EXTENTS: 4, EXTENT_ORDER: 8, MEM_FLAGS: 12, DOMID: 16, SIZE: 20 },
  /** struct mmuext_op [xen.h]: cmd, arg1 (mfn / linear_addr), arg2 */
  mmuext_op: { CMD: 0, ARG1: 4, ARG2: 8, SIZE: 12 },
  /** struct mmu_update [xen.h] */
  mmu_update: { PTR: 0, VAL: 8, SIZE: 16 },
} as const;
