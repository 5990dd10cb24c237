/**
 * 82540EM register offsets and bit fields.
 *
 * References:
 * - [8254x SDM] Intel PCI/PCI-X Family of Gigabit Ethernet Controllers Software Developer's
 *   Manual (317453), rev. 4.0: §13 (register descriptions), §3.2/§3.3 (descriptors),
 *   §5 (EEPROM map), §8 (PHY registers), §13.7 (statistics).
 * - [QEMU e1000] QEMU 7.2 hw/net/e1000.c, observed values in docs devices.md §1.
 *
 * Offsets are byte offsets into the 128 KiB memory BAR (BAR0).
 */

/** General, interrupt, receive and transmit registers [8254x SDM 13.4, table 13-2]. */
export const REG = {
  CTRL: 0x0000, // [8254x SDM 13.4.1] Device Control
  STATUS: 0x0008, // [8254x SDM 13.4.2] Device Status
  EECD: 0x0010, // [8254x SDM 13.4.3] EEPROM/Flash Control/Data
  EERD: 0x0014, // [8254x SDM 13.4.4] EEPROM Read
  CTRL_EXT: 0x0018, // [8254x SDM 13.4.6] Extended Device Control
  FLA: 0x001c, // [8254x SDM 13.4.5] Flash Access (82541/82547 only: storage)
  MDIC: 0x0020, // [8254x SDM 13.4.7] MDI Control
  FCAL: 0x0028, // [8254x SDM 13.4.8] Flow Control Address Low
  FCAH: 0x002c, // [8254x SDM 13.4.8] Flow Control Address High
  FCT: 0x0030, // [8254x SDM 13.4.9] Flow Control Type
  VET: 0x0038, // [8254x SDM 13.4.10] VLAN Ether Type
  ICR: 0x00c0, // [8254x SDM 13.4.17] Interrupt Cause Read
  ITR: 0x00c4, // [8254x SDM 13.4.18] Interrupt Throttling
  ICS: 0x00c8, // [8254x SDM 13.4.19] Interrupt Cause Set
  IMS: 0x00d0, // [8254x SDM 13.4.20] Interrupt Mask Set/Read
  IMC: 0x00d8, // [8254x SDM 13.4.21] Interrupt Mask Clear
  RCTL: 0x0100, // [8254x SDM 13.4.22] Receive Control
  FCTTV: 0x0170, // [8254x SDM 13.4.11] Flow Control Transmit Timer Value
  TXCW: 0x0178, // [8254x SDM 13.4.14] Transmit Configuration Word
  RXCW: 0x0180, // [8254x SDM 13.4.15] Receive Configuration Word
  TCTL: 0x0400, // [8254x SDM 13.4.33] Transmit Control
  TIPG: 0x0410, // [8254x SDM 13.4.34] Transmit IPG
  AIFS: 0x0458, // [8254x SDM 13.4.35] Adaptive IFS Throttle
  LEDCTL: 0x0e00, // [8254x SDM 13.4.16] LED Control
  PBA: 0x1000, // [8254x SDM 13.4.12] Packet Buffer Allocation
  FCRTL: 0x2160, // [8254x SDM 13.4.23] Flow Control Receive Threshold Low
  FCRTH: 0x2168, // [8254x SDM 13.4.24] Flow Control Receive Threshold High
  RDBAL: 0x2800, // [8254x SDM 13.4.25] Receive Descriptor Base Address Low
  RDBAH: 0x2804, // [8254x SDM 13.4.26] Receive Descriptor Base Address High
  RDLEN: 0x2808, // [8254x SDM 13.4.27] Receive Descriptor Length
  RDH: 0x2810, // [8254x SDM 13.4.28] Receive Descriptor Head
  RDT: 0x2818, // [8254x SDM 13.4.29] Receive Descriptor Tail
  RDTR: 0x2820, // [8254x SDM 13.4.30] Receive Delay Timer
  RXDCTL: 0x2828, // [8254x SDM 13.4.31] Receive Descriptor Control
  RADV: 0x282c, // [8254x SDM 13.4.32] Receive Interrupt Absolute Delay Timer
  RSRPD: 0x2c00, // [8254x SDM 13.4.33] Receive Small Packet Detect Interrupt
  TDBAL: 0x3800, // [8254x SDM 13.4.37] Transmit Descriptor Base Address Low
  TDBAH: 0x3804, // [8254x SDM 13.4.38] Transmit Descriptor Base Address High
  TDLEN: 0x3808, // [8254x SDM 13.4.39] Transmit Descriptor Length
  TDH: 0x3810, // [8254x SDM 13.4.40] Transmit Descriptor Head
  TDT: 0x3818, // [8254x SDM 13.4.41] Transmit Descriptor Tail
  TIDV: 0x3820, // [8254x SDM 13.4.42] Transmit Interrupt Delay Value
  TXDCTL: 0x3828, // [8254x SDM 13.4.43] Transmit Descriptor Control
  TADV: 0x382c, // [8254x SDM 13.4.44] Transmit Absolute Interrupt Delay Value
  TSPMT: 0x3830, // [8254x SDM 13.4.45] TCP Segmentation Pad and Threshold
  RXCSUM: 0x5000, // [8254x SDM 13.4.46] Receive Checksum Control
  MTA: 0x5200, // [8254x SDM 13.5.1] Multicast Table Array, 128 dwords
  RAL0: 0x5400, // [8254x SDM 13.5.2] Receive Address Low (n), 16 pairs of 8 bytes
  RAH0: 0x5404, // [8254x SDM 13.5.3] Receive Address High (n)
  VFTA: 0x5600, // [8254x SDM 13.5.4] VLAN Filter Table Array, 128 dwords
  WUC: 0x5800, // [8254x SDM 13.6.1] Wakeup Control
  WUFC: 0x5808, // [8254x SDM 13.6.2] Wakeup Filter Control
  WUS: 0x5810, // [8254x SDM 13.6.3] Wakeup Status
  MANC: 0x5820, // [8254x SDM 13.4.47] Management Control
  IPAV: 0x5838, // [8254x SDM 13.6.4] IP Address Valid
  IP4AT: 0x5840, // [8254x SDM 13.6.5] IPv4 Address Table
  IP6AT: 0x5880, // [8254x SDM 13.6.6] IPv6 Address Table
  WUPL: 0x5900, // [8254x SDM 13.6.7] Wakeup Packet Length
  WUPM: 0x5a00, // [8254x SDM 13.6.8] Wakeup Packet Memory
  FFLT: 0x5f00, // [8254x SDM 13.6.9] Flexible Filter Length Table
  FFMT: 0x9000, // [8254x SDM 13.6.10] Flexible Filter Mask Table
  FFVT: 0x9800, // [8254x SDM 13.6.11] Flexible Filter Value Table
  PBM: 0x10000, // [8254x SDM 13.8] Packet Buffer Memory, 64 KiB
} as const;

/** Statistics registers [8254x SDM 13.7, table 13-97]. All clear on read. */
export const STAT = {
  CRCERRS: 0x4000,
  ALGNERRC: 0x4004,
  SYMERRS: 0x4008,
  RXERRC: 0x400c,
  MPC: 0x4010, // missed packets
  SCC: 0x4014,
  ECOL: 0x4018,
  MCC: 0x401c,
  LATECOL: 0x4020,
  COLC: 0x4028,
  DC: 0x4030,
  TNCRS: 0x4034,
  SEC: 0x4038,
  CEXTERR: 0x403c,
  RLEC: 0x4040,
  XONRXC: 0x4048,
  XONTXC: 0x404c,
  XOFFRXC: 0x4050,
  XOFFTXC: 0x4054,
  FCRUC: 0x4058,
  PRC64: 0x405c,
  PRC127: 0x4060,
  PRC255: 0x4064,
  PRC511: 0x4068,
  PRC1023: 0x406c,
  PRC1522: 0x4070,
  GPRC: 0x4074, // good packets received
  BPRC: 0x4078, // broadcast packets received
  MPRC: 0x407c, // multicast packets received
  GPTC: 0x4080, // good packets transmitted
  GORCL: 0x4088, // good octets received (low)
  GORCH: 0x408c,
  GOTCL: 0x4090, // good octets transmitted (low)
  GOTCH: 0x4094,
  RNBC: 0x40a0, // receive no buffers
  RUC: 0x40a4, // receive undersize
  RFC: 0x40a8,
  ROC: 0x40ac, // receive oversize
  RJC: 0x40b0,
  MGTPRC: 0x40b4,
  MGTPDC: 0x40b8,
  MGTPTC: 0x40bc,
  TORL: 0x40c0, // total octets received (low)
  TORH: 0x40c4,
  TOTL: 0x40c8, // total octets transmitted (low)
  TOTH: 0x40cc,
  TPR: 0x40d0, // total packets received
  TPT: 0x40d4, // total packets transmitted
  PTC64: 0x40d8,
  PTC127: 0x40dc,
  PTC255: 0x40e0,
  PTC511: 0x40e4,
  PTC1023: 0x40e8,
  PTC1522: 0x40ec,
  MPTC: 0x40f0, // multicast packets transmitted
  BPTC: 0x40f4, // broadcast packets transmitted
  TSCTC: 0x40f8, // TCP segmentation contexts transmitted
  TSCTFC: 0x40fc, // TCP segmentation context transmit fail
} as const;

/** First and last statistics register offsets [8254x SDM 13.7]. */
export const STAT_FIRST = 0x4000;
export const STAT_LAST = 0x40fc;

/** CTRL bits [8254x SDM 13.4.1, table 13-3]. */
export const CTRL = {
  FD: 1 << 0, // full duplex
  LRST: 1 << 3, // link reset
  ASDE: 1 << 5, // auto-speed detection enable
  SLU: 1 << 6, // set link up
  ILOS: 1 << 7, // invert loss-of-signal
  SPEED_MASK: 3 << 8,
  SPEED_1000: 2 << 8,
  FRCSPD: 1 << 11,
  FRCDPLX: 1 << 12,
  SWDPIN0: 1 << 18,
  SWDPIN2: 1 << 20,
  RST: 1 << 26, // device reset, self-clearing
  RFCE: 1 << 27,
  TFCE: 1 << 28,
  VME: 1 << 30, // VLAN mode enable
  PHY_RST: 1 << 31, // PHY reset
} as const;

/** CTRL reset value: FD, SLU, speed 1000, SWDPIN0/2 [QEMU e1000: 0x00140240 observed]. */
export const CTRL_RESET = 0x00140240;

/** STATUS bits [8254x SDM 13.4.2, table 13-5]. */
export const STATUS = {
  FD: 1 << 0,
  LU: 1 << 1, // link up
  TXOFF: 1 << 4,
  SPEED_1000: 2 << 6,
  ASDV_1000: 3 << 8,
} as const;

/** STATUS with the link down; LU is ORed in when up [QEMU e1000: 0x80080783 observed with LU]. */
export const STATUS_BASE = 0x80080781;

/** EECD bits [8254x SDM 13.4.3, table 13-6]. */
export const EECD = {
  SK: 1 << 0, // clock input to the EEPROM
  CS: 1 << 1, // chip select
  DI: 1 << 2, // data input to the EEPROM
  DO: 1 << 3, // data output from the EEPROM
  FWE_MASK: 3 << 4, // flash write enable
  REQ: 1 << 6, // request EEPROM access
  GNT: 1 << 7, // grant EEPROM access
  PRES: 1 << 8, // EEPROM present
  SIZE: 1 << 9, // 0: 64-word Microwire (6 address bits) on the 82540EM
} as const;

/** EERD fields, 82540EM layout [8254x SDM 13.4.4, table 13-7]. */
export const EERD = {
  START: 1 << 0,
  DONE: 1 << 4,
  ADDR_SHIFT: 8,
  ADDR_MASK: 0xff << 8,
  DATA_SHIFT: 16,
} as const;

/** MDIC fields [8254x SDM 13.4.7, table 13-10]. */
export const MDIC = {
  DATA_MASK: 0xffff,
  REG_SHIFT: 16,
  REG_MASK: 0x1f << 16,
  PHY_SHIFT: 21,
  PHY_MASK: 0x1f << 21,
  OP_WRITE: 1 << 26,
  OP_READ: 2 << 26,
  OP_MASK: 3 << 26,
  READY: 1 << 28,
  INT_EN: 1 << 29,
  ERROR: 1 << 30,
} as const;

/** Interrupt cause bits for ICR/ICS/IMS/IMC [8254x SDM 13.4.17, table 13-66]. */
export const ICR = {
  TXDW: 1 << 0, // transmit descriptor written back
  TXQE: 1 << 1, // transmit queue empty
  LSC: 1 << 2, // link status change
  RXSEQ: 1 << 3, // receive sequence error
  RXDMT0: 1 << 4, // receive descriptor minimum threshold
  RXO: 1 << 6, // receiver overrun
  RXT0: 1 << 7, // receiver timer interrupt
  MDAC: 1 << 9, // MDI/O access complete
  RXCFG: 1 << 10,
  GPI_EN0: 1 << 11,
  GPI_EN1: 1 << 12,
  GPI_EN2: 1 << 13,
  GPI_EN3: 1 << 14,
  TXD_LOW: 1 << 15,
  SRPD: 1 << 16, // small receive packet detected
} as const;

/** Interrupt cause bits that exist on the 82540EM [8254x SDM 13.4.17]. */
export const ICR_VALID = 0x0001fedf;

/** RCTL bits [8254x SDM 13.4.22, table 13-67]. */
export const RCTL = {
  RST: 1 << 0,
  EN: 1 << 1, // receiver enable
  SBP: 1 << 2, // store bad packets
  UPE: 1 << 3, // unicast promiscuous
  MPE: 1 << 4, // multicast promiscuous
  LPE: 1 << 5, // long packet enable
  LBM_MASK: 3 << 6, // loopback mode
  RDMTS_SHIFT: 8, // descriptor minimum threshold size: 1/2, 1/4, 1/8 of RDLEN
  RDMTS_MASK: 3 << 8,
  MO_SHIFT: 12, // multicast offset
  MO_MASK: 3 << 12,
  BAM: 1 << 15, // broadcast accept mode
  BSIZE_SHIFT: 16,
  BSIZE_MASK: 3 << 16,
  VFE: 1 << 18, // VLAN filter enable
  CFIEN: 1 << 19,
  CFI: 1 << 20,
  DPF: 1 << 22,
  PMCF: 1 << 23,
  BSEX: 1 << 25, // buffer size extension (x16)
  SECRC: 1 << 26, // strip Ethernet CRC
} as const;

/** TCTL bits [8254x SDM 13.4.33, table 13-76]. */
export const TCTL = {
  RST: 1 << 0,
  EN: 1 << 1, // transmit enable
  PSP: 1 << 3, // pad short packets
  CT_SHIFT: 4,
  COLD_SHIFT: 12,
  SWXOFF: 1 << 22,
  RTLC: 1 << 24,
} as const;

/** RDTR / TIDV / RADV / TADV fields [8254x SDM 13.4.30, 13.4.32, 13.4.42, 13.4.44]. */
export const DELAY = {
  /** Delay timers count in units of 1.024 µs. */
  UNIT_NS: 1024,
  VALUE_MASK: 0xffff,
  /** RDTR.FPD: flush partial descriptor block (self-clearing). */
  RDTR_FPD: 1 << 31,
} as const;

/** ITR counts in units of 256 ns [8254x SDM 13.4.18]. */
export const ITR_UNIT_NS = 256;

/** RAH bits [8254x SDM 13.5.3]. */
export const RAH = {
  AV: 1 << 31, // address valid
  ASEL_MASK: 3 << 16,
} as const;

/** RXCSUM bits [8254x SDM 13.4.46, table 13-90]. */
export const RXCSUM = {
  PCSS_MASK: 0xff,
  IPOFL: 1 << 8, // IP checksum offload
  TUOFL: 1 << 9, // TCP/UDP checksum offload
} as const;

/** RXCSUM reset value: PCSS 0, IPOFLD and TUOFLD clear (offloads off) [8254x SDM 13.4.46]. */
export const RXCSUM_RESET = 0;

/** PBA: receive allocation in KiB in bits 15:0; reset 48 KiB Rx [8254x SDM 13.4.12]. */
export const PBA_RESET = 0x00100030;

/** LEDCTL reset value [QEMU e1000: 0x602 observed]. */
export const LEDCTL_RESET = 0x00000602;

/** MANC reset value [QEMU e1000: 0x00222300 observed]. */
export const MANC_RESET = 0x00222300;

/** VET reset value: 802.1Q TPID [8254x SDM 13.4.10]. */
export const VET_RESET = 0x8100;

/** Registers the BAR keeps as plain storage (read back what was written). */
export const STORAGE_RANGES: readonly (readonly [start: number, endExclusive: number])[] = [
  [REG.CTRL_EXT, REG.CTRL_EXT + 4],
  [REG.FLA, REG.FLA + 4],
  [REG.FCAL, REG.FCT + 4],
  [REG.VET, REG.VET + 4],
  [REG.FCTTV, REG.FCTTV + 4],
  [REG.TXCW, REG.TXCW + 4],
  [REG.RXCW, REG.RXCW + 4],
  [REG.TIPG, REG.TIPG + 4],
  [REG.AIFS, REG.AIFS + 4],
  [REG.LEDCTL, REG.LEDCTL + 4],
  [REG.PBA, REG.PBA + 4],
  [REG.FCRTL, REG.FCRTL + 4],
  [REG.FCRTH, REG.FCRTH + 4],
  [REG.RDBAL, REG.RDBAH + 4],
  [REG.RXDCTL, REG.RXDCTL + 4],
  [REG.RSRPD, REG.RSRPD + 4],
  [REG.TDBAL, REG.TDBAH + 4],
  [REG.TXDCTL, REG.TXDCTL + 4],
  [REG.TSPMT, REG.TSPMT + 4],
  [REG.RXCSUM, REG.RXCSUM + 4],
  [REG.MTA, REG.MTA + 128 * 4],
  [REG.RAL0, REG.RAL0 + 16 * 8],
  [REG.VFTA, REG.VFTA + 128 * 4],
  [REG.WUC, REG.WUC + 4],
  [REG.WUFC, REG.WUFC + 4],
  [REG.WUS, REG.WUS + 4],
  [REG.MANC, REG.MANC + 4],
  [REG.IPAV, REG.IPAV + 4],
  [REG.IP4AT, REG.IP4AT + 7 * 8],
  [REG.IP6AT, REG.IP6AT + 16],
  [REG.WUPL, REG.WUPL + 4],
  [REG.WUPM, REG.WUPM + 128],
  [REG.FFLT, REG.FFLT + 4 * 8],
  [REG.FFMT, REG.FFMT + 128 * 8],
  [REG.FFVT, REG.FFVT + 128 * 8],
  [REG.PBM, REG.PBM + 0x10000],
];

/** The I/O BAR: IOADDR selects a register, IODATA accesses it [8254x SDM 13.2.2]. */
export const IO_BAR = {
  IOADDR: 0x00,
  IODATA: 0x04,
  /** BAR size [QEMU e1000: 64 bytes, sizing reads 0xffffffc1]; 8 bytes are decoded. */
  SIZE: 64,
} as const;

/** Size of the memory BAR [8254x SDM 4.1, QEMU e1000: 128 KiB]. */
export const MMIO_SIZE = 0x20000;

/** PCI identity of the 82540EM [8254x SDM 4.1, table 4-2]. */
export const PCI_ID = {
  VENDOR: 0x8086,
  DEVICE: 0x100e,
  /** Revision ID as QEMU reports it [QEMU e1000: 0x03]. */
  REVISION: 0x03,
  /** Ethernet controller. */
  CLASS: 0x020000,
} as const;
