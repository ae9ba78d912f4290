/**
 * A job's control row (`rstore jobs pause|resume|cancel`) read between batches: a batch can be a few
 * hundred microseconds, so the checkpoint file is read at most every `everyMs`, and the value read last
 * stands in between. One poll per job, so every check of the job sees the same latest request.
 */
export class ControlPoll<T> {
  private readAt = Number.NEGATIVE_INFINITY
  private last: T

  constructor(
    private readonly read: () => T,
    initial: T,
    private readonly everyMs = 100,
  ) {
    this.last = initial
  }

  /** The latest request: read again when the last read is older than `everyMs`, or when forced. */
  latest(force = false): T {
    const now = Date.now()
    if (force || now - this.readAt >= this.everyMs) {
      this.last = this.read()
      this.readAt = now
    }
    return this.last
  }
}
