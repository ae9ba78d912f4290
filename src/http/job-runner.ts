/**
 * Migrations the dashboard runs in its own process (POST /api/jobs/migrate, docs/dashboard.md "Jobs"),
 * the way test/migrate/job-inprocess.test.ts runs one: runMigrationJob with an AbortSignal and a
 * ProgressSink. The request is answered once the job holds `locks/migration`; a refusal before that
 * (another job unfinished, a bad range) is the request's error. Pause / resume / cancel go through the
 * checkpoint's control row like any job's; stopping the dashboard stops its jobs resumable.
 */
import type {RstoreConfig} from '../config.js'
import type {TopologyStore} from '../coord/topology-store.js'
import {openCheckpoints} from '../migrate/checkpoints.js'
import {runMigrationJob, type JobRequest} from '../migrate/job.js'
import type {JobSummary} from '../migrate/job-result.js'
import {MigrationLock} from '../migrate/lock.js'
import type {MoveOptions} from '../migrate/move-options.js'
import type {ProgressReport, ProgressSink} from '../migrate/progress.js'

export type StartResult = {started: true; job: string} | {started: false; summary: JobSummary}

export class JobRunner {
  private readonly jobs = new Map<string, {ctl: AbortController; done: Promise<unknown>}>()
  /** The last progress report of each job this process runs (keys/s, ETA). */
  readonly reports = new Map<string, ProgressReport>()

  constructor(
    private readonly cfg: RstoreConfig,
    private readonly store: TopologyStore,
  ) {}

  async start(req: JobRequest, opts: MoveOptions): Promise<StartResult> {
    const db = openCheckpoints(this.cfg.checkpointDir, this.cfg.product)
    const ctl = new AbortController()
    let onJob!: (id: string) => void
    const named = new Promise<string>((resolve) => (onJob = resolve))
    const sink: ProgressSink = {
      update: (r) => {
        if (!r.job) return
        this.reports.set(r.job, r)
        onJob(r.job)
      },
      log: () => {},
    }
    const run = runMigrationJob(this.store, db, req, opts, sink, ctl.signal)
    // Settled either way (a failure after the start is in the job's checkpoint row, shown by GET /api/jobs).
    const outcome = run.then(
      (summary) => ({summary}),
      (error: unknown) => ({error}),
    )
    const done = outcome.finally(() => db.close())
    const locked = named.then(async (id) => {
      // The sink may speak while the job still waits for the lock: answer once it holds it.
      for (;;) {
        if ((await MigrationLock.holder(this.store))?.job === id) return {id}
        await new Promise((r) => setTimeout(r, 50))
      }
    })
    const first = await Promise.race([outcome, locked])
    if ('id' in first) {
      this.jobs.set(first.id, {ctl, done})
      void done.then(() => this.jobs.delete(first.id))
      return {started: true, job: first.id}
    }
    await done
    if ('error' in first) throw first.error
    return {started: false, summary: first.summary}
  }

  /** Stops every running job between batches (each stays paused and resumable) and waits for them. */
  async stopAll(): Promise<void> {
    const all = [...this.jobs.values()]
    for (const j of all) j.ctl.abort()
    await Promise.all(all.map((j) => j.done))
  }
}
