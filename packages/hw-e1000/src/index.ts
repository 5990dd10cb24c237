/**
 * @paravirt/hw-e1000: an Intel 82540EM (PCI 8086:100E) Ethernet controller model.
 * @packageDocumentation
 */
export { E1000, DEFAULT_MAC, DEFAULT_AUTONEG_NS, type E1000Options, type E1000State } from "./e1000.ts";
export { E1000PciFunction, type E1000PciOptions, type E1000PciState } from "./pciFunction.ts";
export { Eeprom, buildEepromImage, EEPROM_WORDS, EEPROM_WORD, EEPROM_CHECKSUM, EEPROM_CHECKSUM_WORD, type EepromState } from "./eeprom.ts";
export { Phy, PHY_REG, PHY_CTRL, PHY_STATUS, PHY_ID, PHY_ADDRESS, type PhyState } from "./phy.ts";
export * from "./registers.ts";
export { DESC_SIZE, RXD, RXD_STA, RXD_ERR, TXD, TXD_CMD, TXD_STA, DTYP, CTXD, TUCMD, POPTS, internetChecksum, onesSum, foldSum, crc32 } from "./descriptors.ts";
export { rxBufferSize, rxMaxFrame, mtaHash, type RxMatch } from "./rx.ts";
export { type TxContext } from "./tx.ts";
