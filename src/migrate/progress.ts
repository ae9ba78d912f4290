/**
 * Progress of a migration job: its numbers (phase, slots, keys, keys/s, ETA) reported to a sink (the
 * CLI's bar or plain lines, a server's own view) on every change and about once a second, and a JSON
 * record at `progress/migration` in the coordinator every second (bound to the job's lock lease, so it
 * disappears with the mover; the proxies show its numbers on /metrics as rstore_migration).
 */
import type {TopologyStore} from '../coord/topology-store.js'

export type JobPhase = 'starting' | 'marking' | 'scanning' | 'moving' | 'paused' | 'waiting' | 'cancelling' | 'done' | 'cancelled' | 'stopped'

export interface ProgressState {
  job: string
  phase: JobPhase
  slotsDone: number
  slotsTotal: number
  keysMoved: number
  /** Keys found by the scan (pending-set keys are added as they are met). */
  keysTotal: number
  scannedKeys: number
  currentSlot: number
  epoch: number
  bigKeys: number
}

/** What a sink is given: the state and the rates derived from it. */
export interface ProgressReport extends ProgressState {
  /** Over the last ~5 s of moving. */
  keysPerSecond: number
  /** Seconds left (NaN before the move starts). */
  etaSeconds: number
  elapsedSeconds: number
}

/** Where a job's progress goes: the CLI renders it (src/cli/), a server process keeps it. */
export interface ProgressSink {
  /** The numbers, on each change and about once a second. */
  update(report: ProgressReport): void
  /** A line of the job's log: a slot done, a proxy waited for, a warning. */
  log(line: string): void
  /** The job is over (the sink may draw its last state). */
  stop?(): void
}

/** A sink that keeps nothing (callers that only want the summary). */
export const SILENT_SINK: ProgressSink = {update() {}, log() {}}

export interface ProgressOptions {
  sink: ProgressSink
  store?: TopologyStore
  lease?: string
}

export function formatDuration(sec: number): string {
  if (!Number.isFinite(sec) || sec < 0) return '-'
  if (sec < 60) return `${Math.round(sec)}s`
  if (sec < 3600) return `${Math.floor(sec / 60)}m${String(Math.round(sec % 60)).padStart(2, '0')}s`
  return `${Math.floor(sec / 3600)}h${String(Math.floor((sec % 3600) / 60)).padStart(2, '0')}m`
}

export class Progress {
  readonly state: ProgressState
  private readonly samples: {t: number; keys: number}[] = []
  private readonly startedAt = Date.now()
  private moveStartedAt = 0
  private timer: NodeJS.Timeout | null = null
  private publishing = false

  constructor(
    job: string,
    private readonly opts: ProgressOptions,
  ) {
    this.state = {job, phase: 'starting', slotsDone: 0, slotsTotal: 0, keysMoved: 0, keysTotal: 0, scannedKeys: 0, currentSlot: -1, epoch: 0, bigKeys: 0}
  }

  /** Binds the coordinator progress record to the job's lock lease (it disappears with the mover). */
  setLease(id: string): void {
    this.opts.lease = id
  }

  start(): void {
    this.opts.sink.update(this.report())
    this.timer = setInterval(() => this.tick(), 1000)
    this.timer.unref()
  }

  /** Keys/s over the last ~5 seconds of moving. */
  rate(): number {
    const now = Date.now()
    // Sampled at most every 100 ms: every progress change asks for the rate, the window needs few points.
    const last = this.samples[this.samples.length - 1]
    if (!last || now - last.t >= 100) this.samples.push({t: now, keys: this.state.keysMoved})
    while (this.samples.length > 2 && now - this.samples[0]!.t > 5000) this.samples.shift()
    const a = this.samples[0]!
    const dt = (now - a.t) / 1000
    if (dt < 0.5) {
      const total = (now - (this.moveStartedAt || now)) / 1000
      return total > 0 ? this.state.keysMoved / total : 0
    }
    return (this.state.keysMoved - a.keys) / dt
  }

  /** Seconds left, from the fraction of work done (keys and slots weighted equally). */
  eta(): number {
    if (!this.moveStartedAt) return NaN
    const s = this.state
    const fk = s.keysTotal > 0 ? Math.min(1, s.keysMoved / s.keysTotal) : 1
    const fs = s.slotsTotal > 0 ? s.slotsDone / s.slotsTotal : 1
    const f = 0.5 * fk + 0.5 * fs
    if (f <= 0) return NaN
    return ((Date.now() - this.moveStartedAt) / 1000) * ((1 - f) / f)
  }

  set(patch: Partial<ProgressState>): void {
    Object.assign(this.state, patch)
    if (patch.phase === 'moving' && !this.moveStartedAt) this.moveStartedAt = Date.now()
    this.opts.sink.update(this.report())
  }

  log(line: string): void {
    this.opts.sink.log(line)
  }

  report(): ProgressReport {
    return {...this.state, keysPerSecond: this.rate(), etaSeconds: this.eta(), elapsedSeconds: this.elapsedSec()}
  }

  private tick(): void {
    this.opts.sink.update(this.report())
    void this.publish()
  }

  /** Writes the numbers to `progress/migration` (the proxies' /metrics). */
  async publish(): Promise<void> {
    const {store, lease} = this.opts
    if (!store || this.publishing) return
    this.publishing = true
    const s = this.state
    const value = JSON.stringify({
      job: s.job,
      phase: s.phase,
      slots_done: s.slotsDone,
      slots_total: s.slotsTotal,
      keys_moved: s.keysMoved,
      keys_total: s.keysTotal,
      keys_per_second: Math.round(this.rate()),
      eta_seconds: Number.isFinite(this.eta()) ? Math.round(this.eta()) : -1,
      current_slot: s.currentSlot,
      epoch: s.epoch,
      paused: s.phase === 'paused' ? 1 : 0,
      big_keys: s.bigKeys,
      elapsed_seconds: Math.round((Date.now() - this.startedAt) / 1000),
      updated_at: Date.now(),
    })
    try {
      await store.coord.txn([], [{type: 'put', key: store.keys.migrationProgress, value, ...(lease ? {lease} : {})}])
    } catch {
      // progress is best effort (the lease may be gone while stopping)
    } finally {
      this.publishing = false
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = null
    this.opts.sink.update(this.report())
    this.opts.sink.stop?.()
  }

  elapsedSec(): number {
    return (Date.now() - this.startedAt) / 1000
  }
}
