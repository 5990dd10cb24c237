/** Named devices a kernel offers its users (`hda`, `xvda`, `eth0`, `vif1.0`), with arrival notices. */
export class DeviceRegistry<D> {
  private readonly devices = new Map<string, D>();
  private readonly listeners: ((name: string, device: D) => void)[] = [];

  /** Registers `device` as `name`. **Errors:** RangeError when the name is taken. */
  add(name: string, device: D): void {
    if (this.devices.has(name)) throw new RangeError(`device ${name} exists`);
    this.devices.set(name, device);
    for (const l of this.listeners) l(name, device);
  }

  remove(name: string): boolean {
    return this.devices.delete(name);
  }

  get(name: string): D | undefined {
    return this.devices.get(name);
  }

  /** Names in registration order. */
  names(): string[] {
    return [...this.devices.keys()];
  }

  /** Calls `fn` for every device registered from now on (and, with `replay`, those already there). */
  onAdd(fn: (name: string, device: D) => void, replay = true): void {
    this.listeners.push(fn);
    if (replay) for (const [n, d] of this.devices) fn(n, d);
  }

  /** Resolves with the device called `name` as soon as it is registered. */
  waitFor(name: string): Promise<D> {
    const d = this.devices.get(name);
    if (d !== undefined) return Promise.resolve(d);
    return new Promise((resolve) => this.onAdd((n, dev) => n === name && resolve(dev), false));
  }
}
