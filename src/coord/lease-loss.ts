/**
 * The lost/stopped state of a coordinator lease, shared by the embedded and etcd implementations so
 * that both keep the Lease contract the same way: onLost callbacks fire once, only for a lease lost
 * while still kept alive, and a callback added after the loss still runs.
 */
export class LeaseLoss {
  private lost = false
  private stopped = false
  private readonly callbacks: (() => void)[] = []

  /** cleanup stops the keep-alive (it runs on every stop(), as revoke() after release() needs). */
  constructor(private readonly cleanup: () => void) {}

  get isStopped(): boolean {
    return this.stopped
  }

  /** The lease is gone: stops it and calls the onLost callbacks (a callback's throw is rethrown async). */
  markLost(): void {
    if (this.lost || this.stopped) return
    this.lost = true
    this.stop()
    for (const cb of this.callbacks.splice(0)) {
      try {
        cb()
      } catch (err) {
        setImmediate(() => {
          throw err
        })
      }
    }
  }

  stop(): void {
    this.stopped = true
    this.cleanup()
  }

  onLost(cb: () => void): void {
    if (this.lost) {
      setImmediate(cb)
      return
    }
    this.callbacks.push(cb)
  }
}
