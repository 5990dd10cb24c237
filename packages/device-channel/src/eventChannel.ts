/** Event-channel operation numbers [xen/include/public/event_channel.h]. */

/** EVTCHNOP_* sub-operations of HYPERVISOR_event_channel_op. */
export const EVTCHNOP = {
  bind_interdomain: 0,
  bind_virq: 1,
  bind_pirq: 2,
  close: 3,
  send: 4,
  status: 5,
  alloc_unbound: 6,
  bind_ipi: 7,
  bind_vcpu: 8,
  unmask: 9,
  reset: 10,
  init_control: 11,
  expand_array: 12,
  set_priority: 13,
} as const;

/** evtchn_status.status values [event_channel.h EVTCHNSTAT_*]. */
export const EVTCHNSTAT = {
  closed: 0,
  unbound: 1,
  interdomain: 2,
  pirq: 3,
  virq: 4,
  ipi: 5,
} as const;

/** Ports in the 2-level ABI on a 32-bit guest: 32 words of 32 bits [xen.h EVTCHN_2L_NR_CHANNELS]. */
export const EVTCHN_2L_NR_CHANNELS_32 = 1024;
/** ... and on a 64-bit guest: 64 words of 64 bits. */
export const EVTCHN_2L_NR_CHANNELS_64 = 4096;

/** Virtual IRQs a domain can bind [xen.h VIRQ_*]. */
export const VIRQ = {
  TIMER: 0,
  DEBUG: 1,
  CONSOLE: 2,
  DOM_EXC: 3,
  TBUF: 4,
  DEBUGGER: 6,
  XENOPROF: 7,
  CON_RING: 8,
  PCPU_STATE: 9,
  MEM_EVENT: 10,
  ARGO: 11,
  ENOMEM: 12,
  XENPMU: 13,
} as const;

/** Number of VIRQs [xen.h NR_VIRQS]. */
export const NR_VIRQS = 24;
