/**
 * Reference implementations for tests: packages test against these instead of the hypervisor
 * (virtio-queue's `mock`, Effect's `./testing`).
 * @packageDocumentation
 */
export { FlatMemory } from "./flatMemory.ts";
export { RecordingIrqLine } from "./recordingIrqLine.ts";
export { MemoryBlockDevice } from "./memoryBlockDevice.ts";
