/**
 * 82540EM register offsets, bit fields and descriptor layouts as the driver uses them.
 *
 * References:
 * - [8254x SDM] Intel PCI/PCI-X Family of Gigabit Ethernet Controllers Software Developer's
 *   Manual (317453), rev. 4.0: §3 (descriptors), §5 (EEPROM), §8 (PHY registers), §13
 *   (register descriptions), §14 (initialization).
 * - [PCI 3.0] PCI Local Bus Specification 3.0, §6.2 (configuration header).
 *
 * Written from the manual for the driver; the device model keeps its own table.
 */

/** PCI identity this driver binds to [8254x SDM 4.1, table 4-2]. */
export const E1000_PCI_IDS = [{ vendorId: 0x8086, deviceId: 0x100e, name: "82540EM" }] as const;

/** Size of the register BAR (BAR0) [8254x SDM 4.1: 128 KiB memory space]. */
export const E1000_MMIO_SIZE = 0x20000;

/** Byte offsets into BAR0 [8254x SDM 13.4, table 13-2]. */
export const E1000_REG = {
  CTRL: 0x0000, // [8254x SDM 13.4.1] Device Control
  STATUS: 0x0008, // [8254x SDM 13.4.2] Device Status
  EECD: 0x0010, // [8254x SDM 13.4.3] EEPROM/Flash Control/Data
  EERD: 0x0014, // [8254x SDM 13.4.4] EEPROM Read
  CTRL_EXT: 0x0018, // [8254x SDM 13.4.6] Extended Device Control
  MDIC: 0x0020, // [8254x SDM 13.4.7] MDI Control
  FCAL: 0x0028, // [8254x SDM 13.4.8] Flow Control Address Low
  FCAH: 0x002c, // [8254x SDM 13.4.8] Flow Control Address High
  FCT: 0x0030, // [8254x SDM 13.4.9] Flow Control Type
  VET: 0x0038, // [8254x SDM 13.4.10] VLAN Ether Type
  ICR: 0x00c0, // [8254x SDM 13.4.17] Interrupt Cause Read (read to clear)
  ITR: 0x00c4, // [8254x SDM 13.4.18] Interrupt Throttling
  ICS: 0x00c8, // [8254x SDM 13.4.19] Interrupt Cause Set
  IMS: 0x00d0, // [8254x SDM 13.4.20] Interrupt Mask Set/Read
  IMC: 0x00d8, // [8254x SDM 13.4.21] Interrupt Mask Clear
  RCTL: 0x0100, // [8254x SDM 13.4.22] Receive Control
  FCTTV: 0x0170, // [8254x SDM 13.4.11] Flow Control Transmit Timer Value
  TCTL: 0x0400, // [8254x SDM 13.4.33] Transmit Control
  TIPG: 0x0410, // [8254x SDM 13.4.34] Transmit IPG
  RDBAL: 0x2800, // [8254x SDM 13.4.25] Receive Descriptor Base Address Low
  RDBAH: 0x2804, // [8254x SDM 13.4.26] Receive Descriptor Base Address High
  RDLEN: 0x2808, // [8254x SDM 13.4.27] Receive Descriptor Length
  RDH: 0x2810, // [8254x SDM 13.4.28] Receive Descriptor Head
  RDT: 0x2818, // [8254x SDM 13.4.29] Receive Descriptor Tail
  RDTR: 0x2820, // [8254x SDM 13.4.30] Receive Delay Timer
  RADV: 0x282c, // [8254x SDM 13.4.32] Receive Interrupt Absolute Delay Timer
  TDBAL: 0x3800, // [8254x SDM 13.4.37] Transmit Descriptor Base Address Low
  TDBAH: 0x3804, // [8254x SDM 13.4.38] Transmit Descriptor Base Address High
  TDLEN: 0x3808, // [8254x SDM 13.4.39] Transmit Descriptor Length
  TDH: 0x3810, // [8254x SDM 13.4.40] Transmit Descriptor Head
  TDT: 0x3818, // [8254x SDM 13.4.41] Transmit Descriptor Tail
  TIDV: 0x3820, // [8254x SDM 13.4.42] Transmit Interrupt Delay Value
  TADV: 0x382c, // [8254x SDM 13.4.44] Transmit Absolute Interrupt Delay Value
  RXCSUM: 0x5000, // [8254x SDM 13.4.46] Receive Checksum Control
  MTA: 0x5200, // [8254x SDM 13.5.1] Multicast Table Array, 128 dwords
  RAL0: 0x5400, // [8254x SDM 13.5.2] Receive Address Low, 16 RAL/RAH pairs 8 bytes apart
  RAH0: 0x5404, // [8254x SDM 13.5.3] Receive Address High
  VFTA: 0x5600, // [8254x SDM 13.5.4] VLAN Filter Table Array, 128 dwords
} as const;

/** Number of receive address pairs, MTA and VFTA entries [8254x SDM 13.5.1-13.5.4]. */
export const RA_ENTRIES = 16;
export const MTA_ENTRIES = 128;
export const VFTA_ENTRIES = 128;

/** The I/O BAR (BAR1) window: IOADDR selects a register, IODATA accesses it [8254x SDM 13.2.2]. */
export const E1000_IO = { IOADDR: 0x00, IODATA: 0x04 } as const;

/** CTRL bits [8254x SDM 13.4.1, table 13-3]. */
export const CTRL = {
  FD: 1 << 0, // full duplex
  LRST: 1 << 3, // link reset
  ASDE: 1 << 5, // auto-speed detection enable
  SLU: 1 << 6, // set link up
  ILOS: 1 << 7, // invert loss-of-signal
  FRCSPD: 1 << 11, // force speed
  FRCDPLX: 1 << 12, // force duplex
  RST: 1 << 26, // device reset (self-clearing)
  RFCE: 1 << 27, // receive flow control enable
  TFCE: 1 << 28, // transmit flow control enable
  VME: 1 << 30, // VLAN mode enable
  PHY_RST: 1 << 31, // PHY reset
} as const;

/** STATUS bits [8254x SDM 13.4.2, table 13-5]. */
export const STATUS = {
  FD: 1 << 0, // full duplex
  LU: 1 << 1, // link up
  SPEED_SHIFT: 6, // 00 10 Mb/s, 01 100 Mb/s, 1x 1000 Mb/s
  SPEED_MASK: 3 << 6,
} as const;

/** EECD bits [8254x SDM 13.4.3, table 13-6]. */
export const EECD = {
  SK: 1 << 0, // clock input to the EEPROM
  CS: 1 << 1, // chip select
  DI: 1 << 2, // data input to the EEPROM
  DO: 1 << 3, // data output from the EEPROM
  REQ: 1 << 6, // request EEPROM access
  GNT: 1 << 7, // grant EEPROM access
  PRES: 1 << 8, // EEPROM present
  SIZE: 1 << 9, // 0: 64-word (6 address bits), 1: 256-word (8 address bits) Microwire part
} as const;

/** EERD fields, 82540EM layout [8254x SDM 13.4.4, table 13-7]. */
export const EERD = {
  START: 1 << 0,
  DONE: 1 << 4,
  ADDR_SHIFT: 8,
  DATA_SHIFT: 16,
} as const;

/** Microwire READ: start bit and opcode 10b [8254x SDM 5.3, Microwire interface]. */
export const MICROWIRE_READ = 0b110;

/** EEPROM words [8254x SDM 5.2, table 5-2]. */
export const EEPROM = {
  /** 64 words in the 82540EM's 93C46-type part (EECD.SIZE = 0). */
  WORDS_SMALL: 64,
  WORDS_LARGE: 256,
  /** Words 0x00-0x3F sum to this [8254x SDM 5.2.1 "checksum word"]. */
  CHECKSUM: 0xbaba,
  CHECKSUM_WORD: 0x3f,
  MAC0: 0x00,
} as const;

/** MDIC fields [8254x SDM 13.4.7, table 13-10]. */
export const MDIC = {
  DATA_MASK: 0xffff,
  REG_SHIFT: 16,
  PHY_SHIFT: 21,
  OP_WRITE: 1 << 26,
  OP_READ: 2 << 26,
  READY: 1 << 28,
  ERROR: 1 << 30,
} as const;

/** The 82540EM's internal PHY answers at MDI address 1 [8254x SDM 13.4.7]. */
export const PHY_ADDR = 1;

/** PHY registers [8254x SDM 8, table 8-1; IEEE 802.3 clause 22/28/40]. */
export const PHY_REG = {
  CTRL: 0x00, // PHY Control
  STATUS: 0x01, // PHY Status
  ID1: 0x02, // PHY Identifier (OUI bits 3:18)
  ID2: 0x03, // PHY Identifier (OUI 19:24, model, revision)
  AUTONEG_ADV: 0x04, // Autonegotiation Advertisement
  LP_ABILITY: 0x05, // Link Partner Ability
  GIG_CTRL: 0x09, // 1000BASE-T Control
  SPEC_CTRL: 0x10, // PHY Specific Control (M88)
} as const;

/** PHY Control bits [8254x SDM 8.1.1; IEEE 802.3 22.2.4.1]. */
export const PHY_CTRL = {
  RESTART_AN: 1 << 9,
  AN_ENABLE: 1 << 12,
  POWER_DOWN: 1 << 11,
  LOOPBACK: 1 << 14,
} as const;

/** PHY Status bits [8254x SDM 8.1.2; IEEE 802.3 22.2.4.2]. */
export const PHY_STATUS = {
  LINK_UP: 1 << 2,
  AN_COMPLETE: 1 << 5,
} as const;

/**
 * Advertised abilities: selector 802.3 (00001b), 10/100 half and full duplex
 * [8254x SDM 8.1.5; IEEE 802.3 28.2.1.2], and 1000BASE-T full duplex only (the MAC does no
 * gigabit half duplex) [8254x SDM 8.1.10; IEEE 802.3 40.5.1.1].
 */
export const PHY_ADVERTISE = {
  AUTONEG_ADV: 0x0001 | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8),
  GIG_CTRL: 1 << 9,
} as const;

/** M88 PHY Specific Control: automatic MDI/MDI-X crossover (bits 6:5 = 11b) [8254x SDM 8.1.16]. */
export const PHY_SPEC_CTRL_AUTO_MDIX = 3 << 5;

/** The Marvell OUI the 82540EM's PHY reports in PHY ID1 [8254x SDM 8.1.3]. */
export const PHY_ID1_MARVELL = 0x0141;

/** Interrupt causes for ICR/ICS/IMS/IMC [8254x SDM 13.4.17, table 13-66]. */
export const ICR = {
  TXDW: 1 << 0, // transmit descriptor written back
  TXQE: 1 << 1, // transmit queue empty
  LSC: 1 << 2, // link status change
  RXSEQ: 1 << 3, // receive sequence error
  RXDMT0: 1 << 4, // receive descriptor minimum threshold reached
  RXO: 1 << 6, // receiver overrun
  RXT0: 1 << 7, // receiver timer interrupt
} as const;

/** The causes the driver enables (IMS) [8254x SDM 13.4.20; 14.3 "interrupts"]. */
export const IMS_ENABLE = ICR.TXDW | ICR.LSC | ICR.RXSEQ | ICR.RXDMT0 | ICR.RXO | ICR.RXT0;

/** RCTL bits [8254x SDM 13.4.22, table 13-67]. */
export const RCTL = {
  EN: 1 << 1, // receiver enable
  SBP: 1 << 2, // store bad packets
  UPE: 1 << 3, // unicast promiscuous
  MPE: 1 << 4, // multicast promiscuous
  LPE: 1 << 5, // long packet enable
  RDMTS_HALF: 0 << 8, // RXDMT0 when free descriptors fall to 1/2 of the ring
  MO_0: 0 << 12, // multicast offset: MTA hash from address bits 47:36
  BAM: 1 << 15, // broadcast accept mode
  BSIZE_2048: 0 << 16, // with BSEX = 0
  VFE: 1 << 18, // VLAN filter enable
  SECRC: 1 << 26, // strip the Ethernet CRC
} as const;

/** TCTL bits [8254x SDM 13.4.33, table 13-76]. */
export const TCTL = {
  EN: 1 << 1, // transmit enable
  PSP: 1 << 3, // pad short packets
  CT_SHIFT: 4, // collision threshold
  COLD_SHIFT: 12, // collision distance
  RTLC: 1 << 24, // re-transmit on late collision
} as const;

/** Recommended TCTL.CT and full-duplex TCTL.COLD [8254x SDM 13.4.33]. */
export const TCTL_CT = 0x0f;
export const TCTL_COLD_FD = 0x40;

/** TIPG for IEEE 802.3 copper: IPGT 10, IPGR1 8, IPGR2 6 [8254x SDM 13.4.34, table 13-77]. */
export const TIPG_COPPER = 10 | (8 << 10) | (6 << 20);

/** RXCSUM bits [8254x SDM 13.4.46, table 13-90]. */
export const RXCSUM = {
  IPOFL: 1 << 8, // IP checksum offload
  TUOFL: 1 << 9, // TCP/UDP checksum offload
} as const;

/** RAH bits [8254x SDM 13.5.3]. */
export const RAH_AV = 1 << 31;

/** Delay timers count 1.024 µs units [8254x SDM 13.4.30]; ITR counts 256 ns [8254x SDM 13.4.18]. */
export const DELAY_UNIT_NS = 1024;
export const ITR_UNIT_NS = 256;

/** Statistics registers, all clear on read [8254x SDM 13.7, table 13-97]. */
export const STATS32 = {
  crcErrors: 0x4000, // CRCERRS
  alignmentErrors: 0x4004, // ALGNERRC
  symbolErrors: 0x4008, // SYMERRS
  rxErrors: 0x400c, // RXERRC
  missedPackets: 0x4010, // MPC
  singleCollisions: 0x4014, // SCC
  excessiveCollisions: 0x4018, // ECOL
  multipleCollisions: 0x401c, // MCC
  lateCollisions: 0x4020, // LATECOL
  collisions: 0x4028, // COLC
  deferred: 0x4030, // DC
  noCarrierSense: 0x4034, // TNCRS
  sequenceErrors: 0x4038, // SEC
  carrierExtensionErrors: 0x403c, // CEXTERR
  rxLengthErrors: 0x4040, // RLEC
  xonRx: 0x4048, // XONRXC
  xonTx: 0x404c, // XONTXC
  xoffRx: 0x4050, // XOFFRXC
  xoffTx: 0x4054, // XOFFTXC
  fcUnsupported: 0x4058, // FCRUC
  rx64: 0x405c, // PRC64
  rx65to127: 0x4060, // PRC127
  rx128to255: 0x4064, // PRC255
  rx256to511: 0x4068, // PRC511
  rx512to1023: 0x406c, // PRC1023
  rx1024to1522: 0x4070, // PRC1522
  goodPacketsRx: 0x4074, // GPRC
  broadcastRx: 0x4078, // BPRC
  multicastRx: 0x407c, // MPRC
  goodPacketsTx: 0x4080, // GPTC
  rxNoBuffers: 0x40a0, // RNBC
  rxUndersize: 0x40a4, // RUC
  rxFragment: 0x40a8, // RFC
  rxOversize: 0x40ac, // ROC
  rxJabber: 0x40b0, // RJC
  totalPacketsRx: 0x40d0, // TPR
  totalPacketsTx: 0x40d4, // TPT
  tx64: 0x40d8, // PTC64
  tx65to127: 0x40dc, // PTC127
  tx128to255: 0x40e0, // PTC255
  tx256to511: 0x40e4, // PTC511
  tx512to1023: 0x40e8, // PTC1023
  tx1024to1522: 0x40ec, // PTC1522
  multicastTx: 0x40f0, // MPTC
  broadcastTx: 0x40f4, // BPTC
  tsoContexts: 0x40f8, // TSCTC
  tsoContextFailures: 0x40fc, // TSCTFC
} as const;

/** 64-bit statistics: low dword offset; reading the high dword clears both [8254x SDM 13.7]. */
export const STATS64 = {
  goodOctetsRx: 0x4088, // GORCL/GORCH
  goodOctetsTx: 0x4090, // GOTCL/GOTCH
  totalOctetsRx: 0x40c0, // TORL/TORH
  totalOctetsTx: 0x40c8, // TOTL/TOTH
} as const;

/** Every descriptor is 16 bytes; rings are a multiple of 128 bytes (8 descriptors) [8254x SDM 3.2.6, 13.4.27]. */
export const DESC_SIZE = 16;
export const RING_ALIGN_DESCS = 8;
/** Largest ring the driver sets up (Linux e1000's limit for the 82544 and later). */
export const RING_MAX_DESCS = 4096;

/** Legacy receive descriptor [8254x SDM 3.2.3, table 3-1]. */
export const RXD = {
  ADDR: 0, // u64 buffer address
  LENGTH: 8, // u16
  CSUM: 10, // u16
  STATUS: 12, // u8
  ERRORS: 13, // u8
  SPECIAL: 14, // u16
} as const;

/** Receive status [8254x SDM 3.2.3.1, table 3-2]. */
export const RXD_STA = {
  DD: 1 << 0,
  EOP: 1 << 1,
  IXSM: 1 << 2, // ignore checksum indication
  VP: 1 << 3,
  TCPCS: 1 << 5,
  IPCS: 1 << 6,
} as const;

/** Receive errors [8254x SDM 3.2.3.2, table 3-3]. */
export const RXD_ERR = {
  CE: 1 << 0, // CRC or alignment error
  SE: 1 << 1, // symbol error
  SEQ: 1 << 2, // sequence error
  CXE: 1 << 4, // carrier extension error
  TCPE: 1 << 5, // TCP/UDP checksum error
  IPE: 1 << 6, // IP checksum error
  RXE: 1 << 7, // RX data error
} as const;

/** Errors that make a frame unusable (checksum errors are reported, not fatal) [8254x SDM 3.2.3.2]. */
export const RXD_ERR_FRAME = RXD_ERR.CE | RXD_ERR.SE | RXD_ERR.SEQ | RXD_ERR.CXE | RXD_ERR.RXE;

/** Legacy transmit descriptor [8254x SDM 3.3.2, table 3-8]. */
export const TXD = {
  ADDR: 0, // u64
  LENGTH: 8, // u16 (legacy); u32 length 19:0 | DTYP 23:20 | DCMD 31:24 (extended)
  CSO: 10,
  CMD: 11,
  STATUS: 12,
  CSS: 13, // CSS (legacy) / POPTS (data descriptor)
  SPECIAL: 14,
} as const;

/** Transmit command bits [8254x SDM 3.3.3, table 3-10; 3.3.7.1 DCMD]. */
export const TXD_CMD = {
  EOP: 1 << 0, // end of packet
  IFCS: 1 << 1, // insert FCS
  RS: 1 << 3, // report status
  DEXT: 1 << 5, // extended descriptor
  IDE: 1 << 7, // interrupt delay enable
} as const;

/** Transmit status [8254x SDM 3.3.3.2]. */
export const TXD_STA_DD = 1 << 0;

/** Extended descriptor types in dword 2 bits 23:20 [8254x SDM 3.3.6, 3.3.7]. */
export const DTYP = { CONTEXT: 0x0, DATA: 0x1 } as const;

/** TCP/IP context descriptor [8254x SDM 3.3.6, table 3-12]. */
export const CTXD = {
  IPCSS: 0, // u8 IP checksum start
  IPCSO: 1, // u8 IP checksum offset
  IPCSE: 2, // u16 IP checksum end (inclusive; 0 = end of packet)
  TUCSS: 4, // u8 TCP/UDP checksum start
  TUCSO: 5, // u8 TCP/UDP checksum offset
  TUCSE: 6, // u16 TCP/UDP checksum end (inclusive; 0 = end of packet)
  LENGTH: 8, // u32 PAYLEN 19:0 | DTYP 23:20 | TUCMD 31:24
  STA: 12,
  HDRLEN: 13,
  MSS: 14,
} as const;

/** Context TUCMD bits [8254x SDM 3.3.6.1, table 3-13]. */
export const TUCMD = {
  TCP: 1 << 0, // 1 = TCP, 0 = UDP
  IP: 1 << 1, // 1 = IPv4
  DEXT: 1 << 5,
} as const;

/** Data descriptor POPTS [8254x SDM 3.3.7.2, table 3-17]. */
export const POPTS = {
  IXSM: 1 << 0, // insert IP checksum
  TXSM: 1 << 1, // insert TCP/UDP checksum
} as const;
