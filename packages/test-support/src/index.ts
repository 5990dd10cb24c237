/**
 * @paravirt/test-support: helpers for tests that check paravirt against references nobody
 * here wrote (real tools, Debian packages).
 * @packageDocumentation
 */
export { commandWorks, externalTool, underCi, type ExternalTool } from "./externalTool.ts";
export { cacheDir, debianPackage, repoRoot } from "./debian.ts";
