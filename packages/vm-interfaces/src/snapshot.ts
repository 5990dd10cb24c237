/** State save and restore (Firecracker `Persist`, v86 `get_state/set_state`). */

/** A component whose guest-visible state can be saved as JSON-able data and restored. */
export interface Snapshottable<S> {
  saveState(): S;
  /** Restores a state saved by the same kind of component. Throws on a malformed state. */
  restoreState(state: S): void;
}
