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
 */
import {hostname} from 'node:os'
import {setTimeout as sleep} from 'node:timers/promises'
import {PreconditionFailedError, type TopologyStore} from '../coord/topology-store.js'
import {ConflictError, NotFoundError, RstoreError} from '../errors.js'
import {masterOf, parseGroupId, parseSlotRange, type SlotInfo, type Topology} from '../topology/model.js'
import {PENDING_INTACT, pendingSetKey} from '../topology/internal-keys.js'
import {slotOf} from '../topology/slots.js'
import {showKey} from '../topology/key-text.js'
import {BarrierTimeoutError, ProxyAcks} from './barrier.js'
import {canonicalJson, type CheckpointDb, type Job} from './checkpoints.js'
import {failpoint} from './failpoints.js'
import {LockLostError, MigrationLock} from './lock.js'
import {MigrationStore, type BigKey, type MigrationKind, type MigrationProgress, type PlannedSlot, type SlotRow} from './migration-store.js'
import {Progress, type ProgressSink} from './progress.js'
import {RateLimiter} from './rate-limit.js'
import {describeJob, groupMaxmemory, planMigrate, resumeHint} from './plan.js'
import {planRebalance, type RebalanceBy} from './rebalance-plan.js'
import {slotIdsText} from '../topology/slots.js'
import {dumpKeys, existing, isInternalKey, keySizes, Masters, migrateKeys, restoreKeys, sscanPage} from './redis-keys.js'
import {laneNext, lanesFrom, lanesText, ScanBuckets, type ScanLane} from './scan-buckets.js'

export interface MoveOptions {
  /** Sleep after each key moved, ms (Reborn's --delay). */
  delayMs: number
  /** Keys per second, 0 = unlimited. */
  rate: number
  /** Keys per MIGRATE. */
  batch: number
  /** Most bytes (MEMORY USAGE) per MIGRATE of small keys. */
  batchBytes: number
  barrierTimeoutSec: number
  /** Keys larger than this (MEMORY USAGE bytes) are reported and moved alone. */
  bigKeyBytes: number
  lockTtlSec: number
  /** MIGRATE timeout (ms) for a batch of small keys; big keys get bigKeyTimeoutMs. */
  migrateTimeoutMs: number
  bigKeyTimeoutMs: number
  scanCount: number
  /**
   * Most time (ms) a slot's keys are moved while the proxies hold its commands (the fast DUMP/RESTORE
   * path, see moveSlot); a slot that takes longer is released and finished key by key with MIGRATE.
   * 0 = always MIGRATE. Not used with --delay or --rate.
   */
  holdMs: number
  /**
   * The nice value the job command runs at (0 = unchanged): on a shared host a mover at full speed
   * otherwise competes with the proxies and Redis servers for CPU (p99 x2.5 -> x2.0 in bench/migrate).
   */
  nice: number
}

export const DEFAULT_MOVE_OPTIONS: MoveOptions = {
  delayMs: 0,
  rate: 0,
  batch: 200,
  batchBytes: 4 * 1024 * 1024,
  barrierTimeoutSec: 60,
  bigKeyBytes: 8 * 1024 * 1024,
  lockTtlSec: 5,
  migrateTimeoutMs: 10_000,
  bigKeyTimeoutMs: 120_000,
  scanCount: 1000,
  holdMs: 200,
  nice: 10,
}

/** The member that marks a pending set as written only by proxies since the job marked its slot. */

/** Script batches in flight while a held slot moves: source, target and mover work side by side. */
const HELD_INFLIGHT = 5

/** Where the job's progress and log lines go (the CLI's bar, a server's view). */
export type UiOptions = ProgressSink

export type JobRequest =
  | {kind: 'migrate'; from: string | number; to: string | number; group: string | number}
  | {kind: 'rebalance'; by: RebalanceBy}
  /** Continue the unfinished job (or the named one); cancel: finish its slot in flight and stop. */
  | {kind: 'resume'; job?: string; cancel?: boolean}

export interface JobSummary {
  job: string
  kind: MigrationKind | 'none'
  state: 'done' | 'cancelled' | 'nothing-to-do'
  resumed: boolean
  slotsTotal: number
  slotsDone: number
  slotsCancelled: number
  slotsSkipped: number
  keysMoved: number
  bytesMoved: number
  seconds: number
  keysPerSecond: number
  barriers: number
  barrierWaitMs: number
  /** Topology changes written and the time they took (ms). */
  changes: number
  changeMs: number
  /** Time spent in MIGRATE calls of small-key batches (the source is blocked meanwhile), ms. */
  migrateMs: number
  bigKeys: {slot: number; key: string; bytes: number; stallMs: number}[]
  /** Pending-set members of other slots skipped this run (written there by something not a proxy). */
  foreignMembers?: number
  message?: string
}

/** A stop asked for (SIGINT/SIGTERM): the job is left paused and resumable. */
export class StoppedError extends RstoreError {
  constructor(message: string) {
    super('ESTOPPED', message)
    this.name = 'StoppedError'
  }
}

interface Reconciled {
  landed: SlotRow[]
  inflight: SlotRow | null
  queued: SlotRow[]
}

/** Matches the job's slot rows with the topology (the truth about slot states). */
function reconcile(job: Job<MigrationProgress>, topo: Topology, rows: SlotRow[]): Reconciled {
  const out: Reconciled = {landed: [], inflight: null, queued: []}
  for (const r of rows) {
    if (r.state === 'done' || r.state === 'cancelled') continue
    const t = topo.slots[r.slot]!
    if (t.state === 'migrating' && t.group === r.target && t.from === r.source) {
      out.inflight = r
    } else if (t.state === 'online' && t.group === r.target && r.state === 'migrating') {
      out.landed.push(r)
    } else if (t.state === 'online' && t.group === r.source && r.state === 'queued') {
      out.queued.push(r)
    } else {
      throw new ConflictError(
        `job ${job.id}: slot ${r.slot} is ${t.state}${t.state === 'migrating' ? ` from group ${t.from}` : ''} in group ${t.group}, but the job has it ${r.state} (group ${r.source} -> ${r.target}); ` +
          `the slot table was changed outside the job. Put the slot back ('rstore slot info ${r.slot}') or cancel the job ('rstore jobs cancel ${job.id}')`,
      )
    }
  }
  const others = topo.slots.filter((s) => s.state === 'migrating' && s.id !== out.inflight?.slot)
  if (others.length) {
    const s = others[0]!
    throw new ConflictError(`slot ${s.id} is migrating from group ${s.from} to group ${s.group} outside job ${job.id}; only one slot may migrate at a time`)
  }
  return out
}

/**
 * Runs a migrate / rebalance job, new or resumed, to its end. Creates the job (refusing when another
 * unfinished one exists), takes `locks/migration`, and moves its slots.
 */
export async function runMigrationJob(
  store: TopologyStore,
  db: CheckpointDb,
  req: JobRequest,
  opts: MoveOptions,
  ui: UiOptions,
  signal?: AbortSignal,
): Promise<JobSummary> {
  const ms = new MigrationStore(db)
  const started = Date.now()
  let job: Job<MigrationProgress> | undefined
  let resumed = true
  let skipped: number[] = []

  if (req.kind === 'resume') {
    const unfinished = ms.unfinished()
    if (req.job) {
      job = ms.job(req.job)
      if (!job || (job.kind !== 'migrate' && job.kind !== 'rebalance')) throw new NotFoundError(`no migration job '${req.job}' (see 'rstore jobs')`)
      if (job.state === 'done' || job.state === 'cancelled') throw new ConflictError(`job ${job.id} is already ${job.state}`)
    } else {
      job = unfinished[0]
      if (!job) throw new NotFoundError(`there is no unfinished migration job to resume (see 'rstore jobs')`)
    }
    if (req.cancel) ms.setControl(job.id, 'cancel')
  } else {
    const args: Record<string, unknown> =
      req.kind === 'migrate'
        ? {from: parseSlotRange(req.from, req.to)[0], to: parseSlotRange(req.from, req.to)[1], group: parseGroupId(req.group)}
        : {by: req.by}
    const unfinished = ms.unfinished()
    const same = unfinished.find((j) => j.kind === req.kind && canonicalJson(j.args) === canonicalJson(args))
    const other = unfinished.find((j) => j !== same)
    if (other && !same) {
      throw new ConflictError(`another migration job is unfinished: ${describeJob(other)}`, resumeHint(other))
    }
    if (same) {
      job = same
    } else {
      const topo = await store.load()
      let plan: PlannedSlot[]
      if (req.kind === 'migrate') {
        ;({plan, skipped} = planMigrate(topo, req.from, req.to, req.group))
      } else {
        const weights = req.by === 'memory' ? await groupMaxmemory(topo) : undefined
        plan = planRebalance(topo, req.by, weights).moves.map((m) => ({slot: m.slot, source: m.from, target: m.to}))
      }
      if (plan.length === 0) {
        return {
          ...emptySummary('none', started),
          state: 'nothing-to-do',
          resumed: false,
          slotsSkipped: skipped.length,
          message: req.kind === 'migrate' ? `every slot of ${args.from}-${args.to} is already in group ${args.group}: nothing to move` : 'the slots are already balanced: nothing to move',
        }
      }
      // Check and create in one IMMEDIATE transaction: two concurrent commands cannot both create.
      job = db.transaction(() => {
        const again = ms.unfinished()
        if (again.length) throw new ConflictError(`another migration job is unfinished: ${describeJob(again[0]!)}`, resumeHint(again[0]!))
        const j = ms.create(req.kind as MigrationKind, args, plan, {skipped: skipped.length})
        ms.progress(j, {slotsSkipped: skipped.length})
        return j
      }).immediate()
      resumed = false
    }
  }

  const progress = new Progress(job.id, {sink: ui, store})
  let lock: MigrationLock
  try {
    lock = await MigrationLock.acquire(store, job.id, {ttlSec: opts.lockTtlSec, log: (l) => progress.log(l)})
  } catch (err) {
    if (!resumed) ms.progress(job, {error: `not started: ${(err as Error).message}`}, 'cancelled')
    throw err
  }
  progress.setLease(lock.lease.id)
  // Started by hand (and now the only mover): a pause left by a mover that died paused no longer applies.
  if (ms.control(job.id) === 'pause') ms.setControl(job.id, 'run')
  const mover = new Mover(store, ms, job, lock, opts, progress, resumed)
  const onAbort = () => mover.requestStop()
  signal?.addEventListener('abort', onAbort)
  try {
    return await mover.run(started, Number(ms.options(job.id).skipped ?? skipped.length))
  } finally {
    signal?.removeEventListener('abort', onAbort)
    progress.stop()
    await mover.close()
    await lock.release()
  }
}

function emptySummary(kind: MigrationKind | 'none', started: number): JobSummary {
  return {
    job: '',
    kind,
    state: 'done',
    resumed: false,
    slotsTotal: 0,
    slotsDone: 0,
    slotsCancelled: 0,
    slotsSkipped: 0,
    keysMoved: 0,
    bytesMoved: 0,
    seconds: (Date.now() - started) / 1000,
    keysPerSecond: 0,
    barriers: 0,
    barrierWaitMs: 0,
    changes: 0,
    changeMs: 0,
    migrateMs: 0,
    bigKeys: [],
  }
}

interface MoveResult {
  moved: number
  bytes: number
  big: BigKey[]
  /** False when a held move stopped early (over its time budget, or a pause/stop asked for). */
  complete: boolean
}

class Mover {
  private topo!: Topology
  private readonly masters = new Masters()
  private readonly acks: ProxyAcks
  /** The slot next in line, held (online + hold) so that it can move as soon as it turns migrating. */
  private preheld: SlotRow | null = null
  /** Every proxy has acknowledged preheld's hold. */
  private preheldAcked = false
  private preholdReleases = 0
  /** Keys a held move found but could not dump (then the slot is checked after its move). */
  private heldUndumped = 0
  /** Pending-set members skipped because their slot is not the set's (see userKeys). */
  private foreignMembers = 0
  private cancel = false
  private stopAsked = false
  private barriers = 0
  private barrierWaitMs = 0
  private changes = 0
  private migrateMs = 0
  private changeMs = 0
  private keysThisRun = 0
  private bytesThisRun = 0
  private moveStartedAt = 0
  private lastControlCheck = 0
  private readonly batch: number
  private readonly limiter: RateLimiter

  constructor(
    private readonly store: TopologyStore,
    private readonly ms: MigrationStore,
    private readonly job: Job<MigrationProgress>,
    private readonly lock: MigrationLock,
    private readonly opts: MoveOptions,
    private readonly progress: Progress,
    private readonly resumed: boolean,
  ) {
    let batch = Math.max(1, opts.batch)
    if (opts.rate > 0) batch = Math.max(1, Math.min(batch, Math.floor(opts.rate / 10) || 1))
    this.batch = batch
    this.acks = new ProxyAcks(store)
    this.limiter = new RateLimiter(opts.rate)
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
      this.changes++
      this.changeMs += performance.now() - t0
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
    this.barriers++
    this.barrierWaitMs += waited
  }

  /** Between batches: lock, stop requests, pause and cancel from `rstore jobs`. */
  private async checkControl(force = false): Promise<void> {
    this.lock.check()
    if (this.stopAsked) throw new StoppedError(`stopped on request; job ${this.job.id} is left paused: resume it with 'rstore migrate --resume'`)
    const now = Date.now()
    if (!force && now - this.lastControlCheck < 100) return
    this.lastControlCheck = now
    let control = this.ms.control(this.job.id)
    if (control === 'pause') {
      await this.releasePreHold()
      const phase = this.progress.state.phase
      this.ms.progress(this.job, {}, 'paused')
      this.progress.set({phase: 'paused'})
      this.log(`job ${this.job.id} paused ('rstore jobs resume ${this.job.id}' continues it)`)
      while ((control = this.ms.control(this.job.id)) === 'pause') {
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
      const rec = reconcile(job, this.topo, rows)
      if (rec.inflight && rec.inflight.state === 'queued') {
        // Killed between the change that made it migrating and its checkpoint: record it now.
        this.ms.recordMigrating(job, rec.inflight.slot, this.topo.epoch)
        rec.inflight.state = 'migrating'
      }
      if (this.ms.control(job.id) === 'cancel') this.cancel = true

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
          await this.markSetsIntact(unmarked)
          await this.change((topo) =>
            unmarked.map((r) => {
              const t = topo.slots[r.slot]!
              if (t.state !== 'online' || t.group !== r.source) throw new ConflictError(`slot ${r.slot} changed meanwhile (now ${t.state} in group ${t.group}); run the command again`)
              return {...t, pending: true}
            }),
          )
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
          await this.scan(rec)
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
      if (strays.length) await this.change((topo) => strays.map((r) => ({...topo.slots[r.slot]!, hold: false})))
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
        const epoch = await this.change((topo) => {
          const onlineAtSource = (row: SlotRow) => {
            const t = topo.slots[row.slot]!
            if (t.state !== 'online' || t.group !== row.source) throw new ConflictError(`slot ${row.slot} is no longer online in group ${row.source} (now ${t.state} in group ${t.group})`)
            return t
          }
          const out: SlotInfo[] = []
          if (finishing) {
            const t = topo.slots[finishing.slot]!
            if (t.state !== 'migrating' || t.group !== finishing.target) {
              throw new ConflictError(`slot ${finishing.slot} is no longer migrating to group ${finishing.target} (now ${t.state} in group ${t.group})`)
            }
            out.push({id: finishing.slot, state: 'online', group: finishing.target})
          }
          if (moving && moving.state === 'queued') {
            onlineAtSource(moving)
            // Rule 3, checked on the topology this change is applied to.
            const other = topo.slots.find((s) => s.state === 'migrating' && s.id !== finishing?.slot)
            if (other) throw new ConflictError(`slot ${other.id} is migrating (from group ${other.from} to group ${other.group}); only one slot may migrate at a time`)
            // pending on a migrating slot: the move has not started; proxies hold its commands
            // (docs/migration.md) until every proxy has stopped using the old routing.
            out.push({id: moving.slot, state: 'migrating', group: moving.target, from: moving.source, pending: true})
          }
          if (next && !topo.slots[next.slot]!.hold) out.push({...onlineAtSource(next), hold: true})
          return out
        })
        if (finishing) failpoint('after-online-change')
        if (moving && moving.state === 'queued') {
          failpoint('after-migrating-change')
          this.ms.recordMigrating(job, moving.slot, epoch)
          moving.state = 'migrating'
        }
        this.preheld = next
        this.preheldAcked = false
        const releases = this.preholdReleases
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
        if (this.preholdReleases === releases) this.preheldAcked = this.preheld !== null
        done = moving
        cur = null
      }

      await this.dropTargetPendingSets()
      if (this.cancel) {
        const left = this.ms.slots(job.id).filter((r) => r.state === 'queued')
        this.progress.set({phase: 'cancelling'})
        const marked = left.filter((r) => this.topo.slots[r.slot]!.pending || this.topo.slots[r.slot]!.hold)
        if (marked.length) {
          const epoch = await this.change((topo) => marked.map((r) => ({...topo.slots[r.slot]!, pending: false, hold: false})))
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
      bytesMoved: this.bytesThisRun,
      seconds,
      keysPerSecond: moveSec > 0 ? Math.round(this.keysThisRun / Math.max(moveSec, 0.001)) : 0,
      barriers: this.barriers,
      barrierWaitMs: Math.round(this.barrierWaitMs),
      changes: this.changes,
      changeMs: Math.round(this.changeMs),
      migrateMs: Math.round(this.migrateMs),
      foreignMembers: this.foreignMembers,
      bigKeys: this.ms.bigKeys(this.job.id).map((b) => ({slot: b.slot, key: showKey(b.key), bytes: b.bytes, stallMs: Math.round(b.stallMs)})),
    }
  }

  /** SCAN each source master once, bucketing the keys of the job's unfinished slots. */
  private async scan(rec: Reconciled): Promise<void> {
    const bySource = new Map<number, Set<number>>()
    for (const r of [...rec.queued, ...(rec.inflight ? [rec.inflight] : [])]) {
      let set = bySource.get(r.source)
      if (!set) bySource.set(r.source, (set = new Set()))
      set.add(r.slot)
    }
    this.progress.set({phase: 'scanning'})
    let seen = 0
    for (const [source, slots] of bySource) {
      let st = this.ms.scanState(this.job.id, source)
      if (st.done) continue
      seen += st.seen
      const addr = this.masterOf(source)
      const conn = this.masters.raw(addr)
      const lanes = lanesFrom(st.started ? st.cursor : null)
      const t0 = Date.now()
      const buckets = new ScanBuckets((slot) => slots.has(slot))
      let pagesSeen = 0
      let lastFlush = Date.now()
      // Records the pages bucketed so far with each lane's cursor after them (one transaction).
      const flush = () => {
        const done = lanes.every((l) => l.cursor === null)
        this.ms.recordScanChunk(this.job.id, source, lanesText(lanes), done, pagesSeen, buckets.take())
        failpoint('scan-chunk')
        pagesSeen = 0
        lastFlush = Date.now()
      }
      let pages = 0
      const scanPage = (c: string) => conn.callRaw(['SCAN', c, 'COUNT', String(this.opts.scanCount)])
      // Each lane asks for its next page before bucketing the current one: the round trip and the
      // bucketing overlap. A page fetched but not bucketed is not in the checkpoint (its cursor is not either).
      let failed = false
      const runLane = async (lane: ScanLane): Promise<void> => {
        if (lane.cursor === null) return
        let page = scanPage(lane.cursor)
        for (;;) {
          const raw = await page
          if (failed) return // the other lane failed: this page is not bucketed
          const next = laneNext(lane, ScanBuckets.cursorOf(raw))
          if (next !== null) {
            page = scanPage(next)
            page.catch(() => {}) // awaited on the next turn; a stop may leave it unread
          }
          const {keys} = buckets.addPage(raw)
          pagesSeen += keys
          seen += keys
          this.progress.set({scannedKeys: seen})
          lane.cursor = next
          // One transaction per ~50k keys scanned or bucketed, or 2 s: few, large chunks (one per slot).
          if (lanes.every((l) => l.cursor === null) || pagesSeen >= 50_000 || buckets.pending >= 50_000 || Date.now() - lastFlush >= 2000) flush()
          if (next === null) return
          if (++pages % 20 === 0) await this.checkControl()
          if (this.cancel) return
        }
      }
      await Promise.all(
        lanes.map((l) =>
          runLane(l).catch((err: unknown) => {
            failed = true
            throw err
          }),
        ),
      )
      if (this.cancel) return
      if (lanes.every((l) => l.cursor === null) && !this.ms.scanState(this.job.id, source).done) flush()
      st = this.ms.scanState(this.job.id, source)
      this.log(`scanned group ${source} (${addr}): ${st.seen} keys in ${((Date.now() - t0) / 1000).toFixed(1)} s`)
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
    await this.change((topo) => {
      const now = topo.slots[row.slot]!
      if (now.state !== 'migrating' || now.group !== row.target || now.from !== row.source) {
        throw new ConflictError(`slot ${row.slot} is no longer migrating from group ${row.source} to group ${row.target} (now ${now.state} in group ${now.group})`)
      }
      return now.pending ? [{id: row.slot, state: 'migrating', group: row.target, from: row.source}] : []
    })
    failpoint('after-release')
  }

  /**
   * Bucket, then pending set, then the check that none is left (each step checkpointed). 'held': the
   * slot is still marked pending, so every proxy parks its commands and nothing but the mover touches
   * its keys: they go by DUMP/RESTORE scripts, several batches in flight, about 2.5x MIGRATE's speed.
   * Returns false (nothing half-moved) when the slot should stop being held: over opts.holdMs, or a
   * pause or stop was asked for; the caller then releases it and finishes 'online' (MIGRATE per
   * batch, proxies moving each key they touch).
   */
  private async moveSlot(row: SlotRow, mode: 'held' | 'online'): Promise<boolean> {
    if (mode === 'held' && !this.canHold(row)) return false
    this.heldUndumped = 0
    const deadline = performance.now() + this.opts.holdMs
    const heldOver = () => {
      this.lock.check()
      return performance.now() > deadline || this.stopAsked || this.pauseAsked()
    }
    const leave = async () => {
      if (mode === 'held') return heldOver()
      await this.checkControl()
      return false
    }
    // A held move cut short by heldOver() leaves its chunk unrecorded: the online path redoes it,
    // skipping the keys already gone from the source.
    const move = (keys: Buffer[]) => (mode === 'held' ? this.moveHeld(row, keys, heldOver) : this.moveKeys(row, keys))
    const src = mode === 'held' ? this.masters.raw(this.masterOf(row.source)) : this.masters.get(this.masterOf(row.source))
    const pendingKey = pendingSetKey(row.slot)
    if (row.step === 'bucket') {
      // Held, the pending set does not change (no proxy writes the slot): its first page moves with
      // the bucket's first chunk, one round of scripts fewer per slot. A resume that repeats the
      // pending set from its start finds those keys gone from the source.
      let firstPage: Promise<[string, Buffer[]]> | null = mode === 'held' ? sscanPage(src, pendingKey, '0', 1000) : null
      firstPage?.catch(() => {})
      let pendingNext = '0'
      for (;;) {
        if (await leave()) return false
        const chunk = Math.max(mode === 'held' ? this.batch * HELD_INFLIGHT : this.batch, 1000)
        let {seq, keys} = this.ms.bucketChunks(this.job.id, row.slot, row.bucketSeq, chunk)
        let withPage = false
        if (firstPage) {
          const [next, members] = await firstPage
          firstPage = null
          keys = keys.concat(members)
          pendingNext = next
          withPage = true
        }
        if (!keys.length) break
        const res = await move(keys)
        if (res.complete) row.bucketSeq = seq
        else if (withPage) pendingNext = '0'
        this.ms.recordBatch(this.job, row, res.moved, res.bytes, res.big)
        if (!res.complete) return false
      }
      // Not recorded by itself: a resume re-reads the bucket after its last chunk, finds none, and
      // goes on with the pending set from its start.
      row.step = pendingNext === '0' && mode === 'held' ? 'verify' : 'pending'
      row.pendingCursor = pendingNext
    }
    if (row.step === 'pending') {
      for (;;) {
        if (await leave()) return false
        const [next, members] = await sscanPage(src, pendingKey, row.pendingCursor, 1000)
        const res = await move(members)
        if (res.complete) {
          row.pendingCursor = next
          if (next === '0') row.step = 'verify'
        }
        this.ms.recordBatch(this.job, row, res.moved, res.bytes, res.big)
        if (!res.complete) return false
        if (next === '0') break
      }
    }
    // The pending set lost its mark (deleted or replaced by something not a proxy): it cannot be
    // trusted to name every key written since the scan, so the source is scanned for the slot's keys.
    if (!(await this.setIntact(row))) {
      const found = await this.scanSlot(row)
      this.log(`slot ${row.slot}: its pending set on group ${row.source} was tampered with; a scan of the source found ${found.length} key(s) of the slot left, moving them`)
      if (found.length) {
        const res = await move(found)
        this.ms.recordBatch(this.job, row, res.moved, res.bytes, res.big)
        if (!res.complete) return false
        this.heldUndumped++ // and check below that none is left
      }
    }
    // Held and complete: every key of the bucket and the pending set that existed was dumped,
    // restored and unlinked, and nothing else wrote the slot meanwhile, so the check below has nothing
    // to find (unless a key could not be dumped).
    if (mode === 'held' && this.heldUndumped === 0) return true
    // verify: nothing of the bucket or the pending set is left on the source.
    for (let round = 1; ; round++) {
      const left = await this.leftovers(row)
      if (!left.length) return true
      if (round > 3) {
        throw new RstoreError('EMIGRATE', `slot ${row.slot}: ${left.length} key(s) are still on group ${row.source} after moving (e.g. '${showKey(left[0]!, 80)}'); job ${this.job.id} is left resumable`)
      }
      if (await leave()) return false
      this.log(`slot ${row.slot}: ${left.length} key(s) still on the source, moving them again`)
      const res = await move(left)
      this.ms.recordBatch(this.job, row, res.moved, res.bytes, res.big)
      if (!res.complete) return false
    }
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
    this.preholdReleases++
    this.preheldAcked = false
    await this.change((topo) => (topo.slots[row.slot]!.hold ? [{...topo.slots[row.slot]!, hold: false}] : []))
  }

  /** The fast path applies to a slot still held (migrating + pending), without --delay/--rate. */
  private canHold(row: SlotRow): boolean {
    const t = this.topo.slots[row.slot]!
    return this.opts.holdMs > 0 && this.opts.delayMs <= 0 && !(this.opts.rate > 0) && t.state === 'migrating' && t.pending === true
  }

  private lastPauseCheck = 0

  /** `rstore jobs pause` (read at most every 100 ms): a held slot is released before pausing. */
  private pauseAsked(): boolean {
    const now = Date.now()
    if (now - this.lastPauseCheck < 100) return false
    this.lastPauseCheck = now
    return this.ms.control(this.job.id) === 'pause'
  }

  private async leftovers(row: SlotRow): Promise<Buffer[]> {
    const src = this.masters.get(this.masterOf(row.source))
    const left: Buffer[] = []
    let seq = -1
    for (;;) {
      const chunk = this.ms.bucketChunks(this.job.id, row.slot, seq, 1000)
      if (!chunk.keys.length) break
      for (let i = 0; i < chunk.keys.length; i += 1000) left.push(...(await existing(src, chunk.keys.slice(i, i + 1000))))
      seq = chunk.seq
    }
    let cursor = '0'
    do {
      const [next, members] = await sscanPage(src, pendingSetKey(row.slot), cursor, 1000)
      left.push(...(await existing(src, members.filter((k) => !isInternalKey(k) && slotOf(k) === row.slot))))
      cursor = next
    } while (cursor !== '0')
    return left
  }

  /**
   * Puts the mark PENDING_INTACT in each slot's pending set before the slot is marked pending: a set
   * found without it later was deleted or replaced by something other than a proxy (docs/migration.md).
   */
  private async markSetsIntact(slots: {slot: number; source: number}[]): Promise<void> {
    const bySource = new Map<number, number[]>()
    for (const r of slots) bySource.set(r.source, [...(bySource.get(r.source) ?? []), r.slot])
    for (const [source, list] of bySource) {
      const p = this.masters.get(this.masterOf(source)).pipeline()
      for (const slot of list) p.sadd(pendingSetKey(slot), PENDING_INTACT)
      const res = (await p.exec()) ?? []
      const err = res.find((x) => x[0])
      if (err) throw new RstoreError('EMIGRATE', `cannot mark the pending sets on group ${source}: ${String(err[0])}; run the command again`)
    }
  }

  private async setIntact(row: SlotRow): Promise<boolean> {
    return Number(await this.masters.get(this.masterOf(row.source)).sismember(pendingSetKey(row.slot), PENDING_INTACT)) === 1
  }

  /** Every key of row's slot on its source, by a full SCAN (only when the pending set lost its mark). */
  private async scanSlot(row: SlotRow): Promise<Buffer[]> {
    const conn = this.masters.raw(this.masterOf(row.source))
    const buckets = new ScanBuckets((slot) => slot === row.slot)
    const out: Buffer[] = []
    let cursor = '0'
    do {
      const raw = await conn.callRaw(['SCAN', cursor, 'COUNT', String(this.opts.scanCount)])
      cursor = buckets.addPage(raw).cursor
      for (const packed of buckets.take().get(row.slot) ?? []) {
        for (let pos = 0; pos < packed.blob.length; ) {
          const len = packed.blob.readUInt32BE(pos)
          out.push(Buffer.from(packed.blob.subarray(pos + 4, pos + 4 + len)))
          pos += 4 + len
        }
      }
    } while (cursor !== '0')
    return out
  }

  /** Online at the target and acknowledged: drop the pending set, record done. */
  private async finishSlot(row: SlotRow): Promise<void> {
    await this.masters.get(this.masterOf(row.source)).unlink(pendingSetKey(row.slot))
    this.ms.recordDone(this.job, row.slot)
    failpoint('after-done')
    row.state = 'done'
    this.progress.set({slotsDone: this.job.progress.slotsDone})
  }

  /**
   * A proxy that does not hold a marked migrating slot could have recorded keys in the pending set on
   * the target: dropped for every slot the job finished, one UNLINK per 500 slots and target.
   */
  private async dropTargetPendingSets(): Promise<void> {
    const byTarget = new Map<number, string[]>()
    for (const r of this.ms.slots(this.job.id)) {
      if (r.state !== 'done') continue
      const list = byTarget.get(r.target) ?? []
      list.push(pendingSetKey(r.slot))
      byTarget.set(r.target, list)
    }
    for (const [group, keys] of byTarget) {
      const conn = this.masters.get(this.masterOf(group))
      for (let i = 0; i < keys.length; i += 500) await conn.unlink(...keys.slice(i, i + 500))
    }
  }

  /** The keys of row's slot among keysIn; members of other slots are reported and left alone. */
  private slotKeys(row: SlotRow, keysIn: Buffer[]): Buffer[] {
    const foreign: Buffer[] = []
    const keys = userKeys(keysIn, row.slot, foreign)
    if (foreign.length) {
      this.foreignMembers += foreign.length
      const k = foreign[0]!
      this.log(
        `slot ${row.slot}: skipped ${foreign.length} pending-set member(s) of other slots (e.g. '${showKey(k, 80)}', slot ${slotOf(k)}): not moved, left where they are`,
      )
    }
    return keys
  }

  /** Waits until n more keys may go under --rate. */
  private async throttle(n: number): Promise<void> {
    await this.limiter.take(n)
  }

  /** A key over --big-key: alone, by MIGRATE (the source stalls meanwhile; the stall is reported). */
  private async moveBigKey(row: SlotRow, key: Buffer, size: number, res: MoveResult): Promise<void> {
    const r = await migrateKeys(this.masters.get(this.masterOf(row.source)), this.masterOf(row.target), [key], this.opts.bigKeyTimeoutMs)
    res.moved++
    res.bytes += size
    this.keysThisRun++
    this.bytesThisRun += size
    res.big.push({slot: row.slot, key, bytes: size, stallMs: r.ms})
    this.progress.set({bigKeys: this.progress.state.bigKeys + 1})
    this.log(`big key '${showKey(key, 80)}' (slot ${row.slot}, ${size} bytes) moved alone in ${r.ms.toFixed(0)} ms`)
  }

  /**
   * Moves keys of a HELD slot: per batch, DUMP on the source, RESTORE ... REPLACE on the target, then
   * UNLINK on the source. Not atomic per key, which is safe only because no proxy touches the slot
   * meanwhile; a mover killed between the steps leaves a copy on both sides, and the source copy,
   * still authoritative, replaces it on the next run.
   */
  private async moveHeld(row: SlotRow, keysIn: Buffer[], over: () => boolean): Promise<MoveResult> {
    const res: MoveResult = {moved: 0, bytes: 0, big: [], complete: true}
    const keys = this.slotKeys(row, keysIn)
    const src = this.masters.raw(this.masterOf(row.source))
    const dst = this.masters.raw(this.masterOf(row.target))
    const big: {key: Buffer; size: number}[] = []
    const unlinks: Promise<unknown>[] = []
    const t0 = performance.now()
    let next = 0
    const worker = async () => {
      while (next < keys.length) {
        if (over()) {
          res.complete = false
          return
        }
        const batch = keys.slice(next, (next += this.batch))
        const d = await dumpKeys(src, batch, this.opts.bigKeyBytes)
        await restoreKeys(dst, d)
        failpoint('held-after-restore')
        // Not awaited here: the source runs it before anything sent after it on this connection.
        if (d.keys.length) unlinks.push(src.call(['UNLINK', ...d.keys]))
        big.push(...d.big)
        this.heldUndumped += d.undumped
        res.moved += d.keys.length
        res.bytes += d.bytes
        this.keysThisRun += d.keys.length
        this.bytesThisRun += d.bytes
        this.progress.set({keysMoved: this.job.progress.keysMoved + res.moved})
      }
    }
    await Promise.all(Array.from({length: HELD_INFLIGHT}, worker))
    await Promise.all(unlinks)
    failpoint('held-after-unlink')
    this.migrateMs += performance.now() - t0
    for (const b of big) await this.moveBigKey(row, b.key, b.size, res)
    return res
  }

  /** MIGRATEs keys (of row's slot) from the source to the target master: batches, big keys alone. */
  private async moveKeys(row: SlotRow, keysIn: Buffer[]): Promise<MoveResult> {
    const res: MoveResult = {moved: 0, bytes: 0, big: [], complete: true}
    const keys = this.slotKeys(row, keysIn)
    if (!keys.length) return res
    const srcAddr = this.masterOf(row.source)
    const dst = this.masterOf(row.target)
    const src = this.masters.get(srcAddr)
    for (let i = 0; i < keys.length; i += 1000) {
      const chunk = keys.slice(i, i + 1000)
      const sizes = await keySizes(src, chunk)
      let batch: Buffer[] = []
      let batchBytes = 0
      const flush = async () => {
        if (!batch.length) return
        await this.throttle(batch.length)
        await this.checkControl()
        const t0 = performance.now()
        await migrateKeys(src, dst, batch, this.opts.migrateTimeoutMs)
        failpoint('online-after-migrate')
        this.migrateMs += performance.now() - t0
        res.moved += batch.length
        res.bytes += batchBytes
        this.keysThisRun += batch.length
        this.bytesThisRun += batchBytes
        this.progress.set({keysMoved: this.job.progress.keysMoved + res.moved})
        if (this.opts.delayMs > 0) await sleep(this.opts.delayMs * batch.length)
        batch = []
        batchBytes = 0
      }
      for (let j = 0; j < chunk.length; j++) {
        const size = sizes[j]
        if (size === null || size === undefined) continue // gone (expired, deleted, or moved by a proxy)
        const key = chunk[j]!
        if (size > this.opts.bigKeyBytes) {
          await flush()
          await this.throttle(1)
          await this.checkControl()
          await this.moveBigKey(row, key, size, res)
          if (this.opts.delayMs > 0) await sleep(this.opts.delayMs)
          continue
        }
        batch.push(key)
        batchBytes += size
        if (batch.length >= this.batch || batchBytes >= this.opts.batchBytes) await flush()
      }
      await flush()
    }
    return res
  }
}

/**
 * The keys of the slot without rstore's own (`__rstore:...`) and without repeats. A pending-set
 * member of another slot (the set written by something other than a proxy) is never moved: moving
 * it would take a live key off the group that serves it. Such members go to foreign.
 */
function userKeys(keysIn: Buffer[], slot: number, foreign: Buffer[]): Buffer[] {
  const seen = new Set<string>()
  const keys: Buffer[] = []
  for (const k of keysIn) {
    if (isInternalKey(k)) continue
    if (slotOf(k) !== slot) {
      foreign.push(k)
      continue
    }
    const id = k.toString('latin1')
    if (seen.has(id)) continue
    seen.add(id)
    keys.push(k)
  }
  return keys
}

export {BarrierTimeoutError}
// Kept for importers of mover.js.
export {groupMaxmemory, planMigrate, planRebalanceNow} from './plan.js'
