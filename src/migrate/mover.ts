/**
 * The slot mover (docs/migration.md; docs/architecture.md, "Jobs and checkpoints"): moves slots one at a time from their source group to
 * their target group while proxies keep serving, in O(total keys):
 *
 *   1. every slot of the job still on its source is marked `pending` (one topology change + barrier):
 *      from then on every proxy records each key it writes in such a slot in `__rstore:pending:<slot>`
 *      on the source;
 *   2. each source master is scanned once (SCAN, COUNT 1000), the keys of the job's slots bucketed
 *      into the checkpoint file together with the cursor;
 *   3. per slot: migrating + held (the previous slot going online at its target in the same change) +
 *      barrier; its keys = bucket + pending set are moved while every proxy holds the slot's commands
 *      (DUMP/RESTORE scripts, fast) or, past --hold-ms, after releasing it with `MIGRATE ... KEYS`
 *      batches while proxies move each key they touch; checked gone from the source; then the slot
 *      goes online at the target (+ barrier) and is recorded done.
 *
 * Every step is checkpointed in the same SQLite transaction as the job's counters; the topology is
 * the truth about slot states, so a mover killed at any point is resumed by reconciling the two.
 *
 * This is the driver: the slot-table changes are transitions.ts, a slot's key moves slot-move.ts
 * (held-mover.ts, online-mover.ts), the scans slot-scan.ts, the pending sets pending-sets.ts.
 */
import {hostname} from 'node:os'
import {setTimeout as sleep} from 'node:timers/promises'
import {PreconditionFailedError, type TopologyStore} from '../coord/topology-store.js'
import {ConflictError, RstoreError} from '../errors.js'
import {masterOf, type SlotInfo, type Topology} from '../topology/model.js'
import {pendingSetKey} from '../topology/internal-keys.js'
import {showKey} from '../topology/key-text.js'
import {slotIdsText} from '../topology/slots.js'
import {ProxyAcks} from './barrier.js'
import type {Job} from './checkpoints.js'
import {ControlPoll} from './control-poll.js'
import {failpoint} from './failpoints.js'
import {JobCounters} from './job-counters.js'
import {StoppedError, type JobSummary} from './job-result.js'
import {LockLostError, type MigrationLock} from './lock.js'
import type {Control, MigrationKind, MigrationProgress, MigrationStore, SlotRow} from './migration-store.js'
import type {MoveContext} from './move-context.js'
import {batchSize, type MoveOptions} from './move-options.js'
import {dropTargetPendingSets, markSetsIntact} from './pending-sets.js'
import {describeJob} from './plan.js'
import type {Progress} from './progress.js'
import {RateLimiter} from './rate-limit.js'
import {Masters} from './redis-keys.js'
import {moveSlotKeys} from './slot-move.js'
import {scanSources} from './slot-scan.js'
import * as transitions from './transitions.js'

export class Mover {
  private topo!: Topology
  private readonly masters = new Masters()
  private readonly acks: ProxyAcks
  /** The slot next in line, held (online + hold) so that it can move as soon as it turns migrating. */
  private preheld: SlotRow | null = null
  /** Every proxy has acknowledged preheld's hold. */
  private preheldAcked = false
  private cancel = false
  private stopAsked = false
  private moveStartedAt = 0
  private readonly control = new ControlPoll<Control>(() => this.ms.control(this.job.id), 'run')
  private readonly counters = new JobCounters()
  private readonly limiter: RateLimiter
  /** What the key movers and the scan take (move-context.ts). */
  private readonly ctx: MoveContext

  constructor(
    private readonly store: TopologyStore,
    private readonly ms: MigrationStore,
    private readonly job: Job<MigrationProgress>,
    private readonly lock: MigrationLock,
    private readonly opts: MoveOptions,
    private readonly progress: Progress,
    private readonly resumed: boolean,
  ) {
    this.acks = new ProxyAcks(store)
    this.limiter = new RateLimiter(opts.rate)
    this.ctx = {
      job,
      ms,
      masters: this.masters,
      opts,
      batch: batchSize(opts),
      progress,
      counters: this.counters,
      limiter: this.limiter,
      masterOf: (group) => this.masterOf(group),
      checkControl: () => this.checkControl(),
      cancelled: () => this.cancel,
    }
  }

  requestStop(): void {
    this.stopAsked = true
  }

  async close(): Promise<void> {
    this.masters.close()
    await this.acks.close().catch(() => {})
  }

  private log(line: string): void {
    this.progress.log(line)
  }

  private masterOf(group: number): string {
    const g = this.topo.groups.get(group)
    const m = g && masterOf(g)
    if (!m) throw new ConflictError(`group ${group} has no master: cannot move keys (job ${this.job.id} is left resumable)`)
    return m.addr
  }

  /** One topology change, guarded by the lock; returns the new epoch. */
  private async change(fn: (topo: Topology) => SlotInfo[]): Promise<number> {
    this.lock.check()
    let written: SlotInfo[] = []
    const t0 = performance.now()
    try {
      const epoch = await this.store.update(
        (topo) => {
          written = fn(topo)
          this.topo = topo
          return {slots: written}
        },
        [this.lock.compare()],
      )
      const slots = this.topo.slots.slice()
      for (const s of written) slots[s.id] = s
      this.topo = {...this.topo, slots, epoch}
      this.progress.set({epoch})
      this.counters.changes++
      this.counters.changeMs += performance.now() - t0
      return epoch
    } catch (err) {
      if (err instanceof PreconditionFailedError) throw new LockLostError(this.job.id)
      throw err
    }
  }

  private async barrier(epoch: number): Promise<void> {
    const waited = await this.acks.wait(epoch, {
      timeoutMs: this.opts.barrierTimeoutSec * 1000,
      log: (l) => this.log(l),
      check: () => {
        this.lock.check()
        if (this.stopAsked) throw new StoppedError(`stopped on request while waiting for the proxies; job ${this.job.id} is left paused: resume it with 'rstore migrate --resume'`)
      },
      resumeHint: `Job ${this.job.id} is left resumable: once the proxy applies the topology (or is stopped: its registration expires with its lease), run 'rstore migrate --resume'`,
    })
    this.counters.barriers++
    this.counters.barrierWaitMs += waited
  }

  /** Between batches: lock, stop requests, pause and cancel from `rstore jobs`. */
  private async checkControl(force = false): Promise<void> {
    this.lock.check()
    if (this.stopAsked) throw new StoppedError(`stopped on request; job ${this.job.id} is left paused: resume it with 'rstore migrate --resume'`)
    let control = this.control.latest(force)
    if (control === 'pause') {
      await this.releasePreHold()
      const phase = this.progress.state.phase
      this.ms.progress(this.job, {}, 'paused')
      this.progress.set({phase: 'paused'})
      this.log(`job ${this.job.id} paused ('rstore jobs resume ${this.job.id}' continues it)`)
      while ((control = this.control.latest(true)) === 'pause') {
        this.lock.check()
        if (this.stopAsked) throw new StoppedError(`stopped on request while paused; job ${this.job.id} is left paused`)
        await sleep(200)
      }
      this.ms.progress(this.job, {}, 'running')
      this.progress.set({phase})
      if (control === 'run') this.log(`job ${this.job.id} resumed`)
      this.limiter.reset()
    }
    if (control === 'cancel' && !this.cancel) {
      this.cancel = true
      this.log(`job ${this.job.id}: cancel requested; finishing the slot in flight, then stopping`)
    }
  }

  async run(started: number, skipped: number): Promise<JobSummary> {
    const job = this.job
    this.ms.progress(job, {host: hostname(), pid: process.pid, error: undefined}, 'running')
    this.progress.set({slotsTotal: job.progress.slotsTotal, slotsDone: job.progress.slotsDone, keysMoved: job.progress.keysMoved, keysTotal: job.progress.keysTotal})
    this.progress.start()
    if (this.resumed) this.log(`resuming job ${describeJob(job)}`)
    else this.log(`job ${job.id}: moving ${job.progress.slotsTotal} slot(s)${skipped ? ` (${skipped} already in place, skipped)` : ''}`)
    try {
      this.topo = await this.store.load()
      const rows = this.ms.slots(job.id)
      const rec = transitions.reconcile(job, this.topo, rows)
      if (rec.inflight && rec.inflight.state === 'queued') {
        // Killed between the change that made it migrating and its checkpoint: record it now.
        this.ms.recordMigrating(job, rec.inflight.slot, this.topo.epoch)
        rec.inflight.state = 'migrating'
      }
      if (this.control.latest(true) === 'cancel') this.cancel = true

      // 1. pending marks
      let phase = this.ms.phase(job.id)
      if (!this.cancel) {
        const unmarked = rec.queued.filter((r) => !this.topo.slots[r.slot]!.pending)
        if (unmarked.length) {
          if (phase !== 'pending') {
            // A queued slot lost its mark after the scan (cannot happen through rstore): rescan its source.
            for (const src of new Set(unmarked.map((r) => r.source))) this.ms.resetScan(job.id, src)
            this.ms.setPhase(job, 'pending')
            phase = 'pending'
          }
          this.progress.set({phase: 'marking'})
          await markSetsIntact(this.ctx, unmarked)
          await this.change((topo) => transitions.markPending(topo, unmarked))
          this.log(`marked ${unmarked.length} slot(s) pending (${slotIdsText(unmarked.map((r) => r.slot))}) at epoch ${this.topo.epoch}`)
          failpoint('after-mark')
        }
        if (phase === 'pending') {
          await this.barrier(this.topo.epoch)
          this.ms.setPhase(job, 'scan')
          phase = 'scan'
        }
        // 2. one scan per source group
        if (phase === 'scan') {
          await scanSources(this.ctx, rec)
          const total = this.ms.countBuckets(job)
          this.ms.db.transaction(() => {
            this.ms.progress(job, {keysTotal: total})
            this.ms.setPhase(job, 'move')
          })()
          this.progress.set({keysTotal: total})
          phase = 'move'
        }
      }

      // 3. slot by slot, two stages overlapped: while one slot's keys move, the proxies acknowledge
      //    the change that held the next one (docs/migration.md, "the pipeline").
      this.progress.set({phase: 'moving'})
      this.moveStartedAt = Date.now()
      const queue = rec.queued.slice()
      // A slot held by an interrupted run is the head of its queue; any other held one is released.
      if (queue[0] && this.topo.slots[queue[0].slot]!.hold) this.preheld = queue.shift()!
      const strays = queue.filter((r) => this.topo.slots[r.slot]!.hold)
      if (strays.length) await this.change((topo) => transitions.releaseStrays(topo, strays))
      if (rec.landed.length || rec.inflight || this.preheld) await this.barrier(this.topo.epoch)
      this.preheldAcked = this.preheld !== null
      for (const r of rec.landed) await this.finishSlot(r)
      /** Moved, goes online in the next change. */
      let done: SlotRow | null = null
      /** To move in this round: migrating already (acknowledged), or held (acknowledged or not), or queued. */
      let cur: SlotRow | null = rec.inflight
      let curAcked = cur !== null
      for (;;) {
        await this.checkControl(true)
        if (!cur && !this.cancel) {
          cur = this.preheld ?? queue.shift() ?? null
          curAcked = this.preheld !== null && this.preheldAcked
          this.preheld = null
        }
        if (this.cancel && cur?.state === 'queued') {
          // Not started: stays where it is (the cancel below releases its hold).
          queue.unshift(cur)
          cur = null
        }
        if (this.cancel && this.preheld) queue.unshift(this.preheld)
        const next = this.cancel || !cur ? null : (this.preheld ?? queue.shift() ?? null)
        this.preheld = null
        if (!done && !cur) break
        const finishing: SlotRow | null = done
        const moving: SlotRow | null = cur
        const epoch = await this.change((topo) => transitions.advance(topo, {finishing, moving, next}))
        if (finishing) failpoint('after-online-change')
        if (moving && moving.state === 'queued') {
          failpoint('after-migrating-change')
          this.ms.recordMigrating(job, moving.slot, epoch)
          moving.state = 'migrating'
        }
        this.preheld = next
        this.preheldAcked = false
        const releases = this.counters.preholdReleases
        // The slot to move was held (or migrating) in a table every proxy has acknowledged: its keys
        // move while this change's barrier runs. Otherwise the barrier comes first.
        let barrier: Promise<void> = Promise.resolve()
        if (moving && !curAcked) await this.barrier(epoch)
        else barrier = this.barrier(epoch)
        // The finished slot is recorded done once this barrier has passed, meanwhile the next one moves.
        const finished = barrier.then(() => (finishing ? this.finishSlot(finishing) : undefined))
        const results = await Promise.allSettled([finished, moving ? this.moveCurrent(moving) : Promise.resolve()])
        for (const r of results) if (r.status === 'rejected') throw r.reason
        // Acknowledged with this barrier, unless a pause released it meanwhile.
        if (this.counters.preholdReleases === releases) this.preheldAcked = this.preheld !== null
        done = moving
        cur = null
      }

      await dropTargetPendingSets(this.ctx)
      if (this.cancel) {
        const left = this.ms.slots(job.id).filter((r) => r.state === 'queued')
        this.progress.set({phase: 'cancelling'})
        const marked = left.filter((r) => this.topo.slots[r.slot]!.pending || this.topo.slots[r.slot]!.hold)
        if (marked.length) {
          const epoch = await this.change((topo) => transitions.cancelMarks(topo, marked))
          await this.barrier(epoch)
        }
        for (const r of left) await this.masters.get(this.masterOf(r.source)).unlink(pendingSetKey(r.slot))
        this.ms.recordCancelled(job, left.map((r) => r.slot))
        this.ms.finish(job, 'cancelled')
        this.progress.set({phase: 'cancelled'})
        this.log(`job ${job.id} cancelled: ${job.progress.slotsDone} slot(s) moved, ${left.length} left where they were`)
      } else {
        this.ms.finish(job, 'done')
        this.progress.set({phase: 'done'})
      }
      await this.progress.publish()
      return this.summary(started, skipped)
    } catch (err) {
      const e = err as Error
      if (!(err instanceof LockLostError)) await this.releasePreHold().catch(() => {})
      const stateAfter = err instanceof StoppedError ? 'paused' : 'failed'
      try {
        this.ms.progress(job, {error: e.message}, stateAfter)
      } catch {
        // the checkpoint file itself may be the problem
      }
      this.progress.set({phase: 'stopped'})
      if (err instanceof RstoreError) throw err
      throw new RstoreError('EMIGRATE', `job ${job.id} stopped: ${e.message}; it is resumable: 'rstore migrate --resume'`)
    }
  }

  private summary(started: number, skipped: number): JobSummary {
    const p = this.job.progress
    const c = this.counters
    const seconds = (Date.now() - started) / 1000
    const moveSec = (Date.now() - (this.moveStartedAt || started)) / 1000
    return {
      job: this.job.id,
      kind: this.job.kind as MigrationKind,
      state: this.cancel ? 'cancelled' : 'done',
      resumed: this.resumed,
      slotsTotal: p.slotsTotal,
      slotsDone: p.slotsDone,
      slotsCancelled: p.slotsCancelled,
      slotsSkipped: skipped,
      keysMoved: p.keysMoved,
      bytesMoved: c.bytesThisRun,
      seconds,
      keysPerSecond: moveSec > 0 ? Math.round(c.keysThisRun / Math.max(moveSec, 0.001)) : 0,
      barriers: c.barriers,
      barrierWaitMs: Math.round(c.barrierWaitMs),
      changes: c.changes,
      changeMs: Math.round(c.changeMs),
      migrateMs: Math.round(c.migrateMs),
      foreignMembers: c.foreignMembers,
      bigKeys: this.ms.bigKeys(this.job.id).map((b) => ({slot: b.slot, key: showKey(b.key), bytes: b.bytes, stallMs: Math.round(b.stallMs)})),
    }
  }

  /**
   * The slot is migrating and every proxy has acknowledged it (barrier passed), so no proxy routes
   * its commands by the old table any more: clear its hold mark so that proxies serve it by moving
   * each key they touch (rule 6). No barrier is needed: a proxy that has not applied this yet still
   * holds the slot's commands, and the mover's own moves are already safe.
   */
  private async startMoving(row: SlotRow): Promise<void> {
    const t = this.topo.slots[row.slot]!
    if (t.state !== 'migrating' || !t.pending) return
    await this.change((topo) => transitions.startMoving(topo, row))
    failpoint('after-release')
  }

  /** A migrating slot's keys (slot-move.ts); 'held' only while canHold, and within --hold-ms. */
  private async moveSlot(row: SlotRow, mode: 'held' | 'online'): Promise<boolean> {
    if (mode === 'held' && !this.canHold(row)) return false
    const deadline = performance.now() + this.opts.holdMs
    const heldOver = () => {
      this.lock.check()
      return performance.now() > deadline || this.stopAsked || this.pauseAsked()
    }
    return moveSlotKeys(this.ctx, row, mode, heldOver)
  }

  /** Moves one migrating slot's keys: held while it fits in --hold-ms, then released. */
  private async moveCurrent(row: SlotRow): Promise<void> {
    this.progress.set({currentSlot: row.slot})
    const heldFrom = performance.now()
    const movedBefore = row.keysMoved
    if (await this.moveSlot(row, 'held')) return
    if (this.canHold(row)) {
      this.log(
        `slot ${row.slot}: released after ${(performance.now() - heldFrom).toFixed(0)} ms held (${row.keysMoved - movedBefore} keys moved meanwhile); the rest moves key by key while proxies serve it`,
      )
    }
    await this.startMoving(row)
    await this.moveSlot(row, 'online')
  }

  /**
   * Lets the proxies serve the slot held next in line again (a pause, a stop or an error: its clients
   * must not wait for us). No barrier: its keys are all still on the source.
   */
  private async releasePreHold(): Promise<void> {
    const row = this.preheld
    if (!row || !this.topo.slots[row.slot]!.hold) return
    this.counters.preholdReleases++
    this.preheldAcked = false
    await this.change((topo) => transitions.releaseHold(topo, row.slot))
  }

  /** The fast path applies to a slot still held (migrating + pending), without --delay/--rate. */
  private canHold(row: SlotRow): boolean {
    const t = this.topo.slots[row.slot]!
    return this.opts.holdMs > 0 && this.opts.delayMs <= 0 && !(this.opts.rate > 0) && t.state === 'migrating' && t.pending === true
  }

  /** `rstore jobs pause` during a hold: the held slot is released before pausing. */
  private pauseAsked(): boolean {
    return this.control.latest() === 'pause'
  }

  /** Online at the target and acknowledged: drop the pending set, record done. */
  private async finishSlot(row: SlotRow): Promise<void> {
    await this.masters.get(this.masterOf(row.source)).unlink(pendingSetKey(row.slot))
    this.ms.recordDone(this.job, row.slot)
    failpoint('after-done')
    row.state = 'done'
    this.progress.set({slotsDone: this.job.progress.slotsDone})
  }
}
