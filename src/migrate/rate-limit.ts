import {setTimeout as sleep} from 'node:timers/promises'

/**
 * A token bucket shared by every worker of a job (backfill, verify, the mover's --rate): take(n)
 * waits until n more keys may go. No credit builds up while idle, so a slow stretch is not followed
 * by a burst.
 */
export class RateLimiter {
  private next = 0
  /** perSecond <= 0: unlimited. */
  constructor(private readonly perSecond: number) {}

  async take(n: number): Promise<void> {
    if (!(this.perSecond > 0)) return
    const now = Date.now()
    const start = Math.max(now, this.next)
    this.next = start + (n * 1000) / this.perSecond
    if (start > now) await sleep(start - now)
  }

  /** Forgets the keys sent so far (after a pause, the time paused is not owed). */
  reset(): void {
    this.next = 0
  }
}
