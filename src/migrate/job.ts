/**
 * A migrate / rebalance job from its request to its end (docs/architecture.md, "Jobs and
 * checkpoints"): creates or resumes the job, takes the migration lock, and runs the Mover over it.
 */
import type {TopologyStore} from '../coord/topology-store.js'
import {ConflictError, NotFoundError} from '../errors.js'
import {parseGroupId, parseSlotRange} from '../topology/model.js'
import {canonicalJson, type CheckpointDb, type Job} from './checkpoints.js'
import {emptySummary, type JobSummary} from './job-result.js'
import {MigrationLock} from './lock.js'
import {MigrationStore, type MigrationKind, type MigrationProgress, type PlannedSlot} from './migration-store.js'
import type {MoveOptions} from './move-options.js'
import {Mover} from './mover.js'
import {describeJob, groupMaxmemory, planMigrate, resumeHint} from './plan.js'
import {Progress, type ProgressSink} from './progress.js'
import {planRebalance, type RebalanceBy} from './rebalance-plan.js'

/** Where the job's progress and log lines go (the CLI's bar, a server's view). */
export type UiOptions = ProgressSink

export type JobRequest =
  | {kind: 'migrate'; from: string | number; to: string | number; group: string | number}
  | {kind: 'rebalance'; by: RebalanceBy}
  /** Continue the unfinished job (or the named one); cancel: finish its slot in flight and stop. */
  | {kind: 'resume'; job?: string; cancel?: boolean}

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
