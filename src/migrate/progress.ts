/**
 * Progress of a migration job: a cli-progress bar on a TTY, plain lines otherwise, and a JSON
 * record at `progress/migration` in the coordinator every second (bound to the job's lock lease, so
 * it disappears with the mover; the proxies show its numbers on /metrics as rstore_migration).
 */
import cliProgress from 'cli-progress'
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

export interface ProgressOptions {
  /** Draw a bar (stderr is a TTY and not --json). */
  tty: boolean
  /** Print nothing but errors (--json). */
  quiet: boolean
  /** Plain-line output. */
  write: (line: string) => void
  store?: TopologyStore
  lease?: string
  /** Plain progress line every this many ms (default 2000). */
  lineEveryMs?: number
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
  private multibar: cliProgress.MultiBar | null = null
  private bar: cliProgress.SingleBar | null = null
  private lastLine = 0
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
    if (this.opts.tty && !this.opts.quiet) {
      this.multibar = new cliProgress.MultiBar(
        {
          format: ' {bar} {value}/{total} slots | {keys} keys | {rate} keys/s | ETA {etaText} | {phaseText}',
          barsize: 28,
          hideCursor: true,
          clearOnComplete: false,
          stopOnComplete: false,
          stream: process.stderr,
          fps: 5,
        },
        cliProgress.Presets.shades_classic,
      )
      this.bar = this.multibar.create(Math.max(1, this.state.slotsTotal), this.state.slotsDone, this.payload())
    }
    this.timer = setInterval(() => this.tick(), 1000)
    this.timer.unref()
  }

  /** Keys/s over the last ~5 seconds of moving. */
  rate(): number {
    const now = Date.now()
    this.samples.push({t: now, keys: this.state.keysMoved})
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
    if (this.bar) {
      this.bar.setTotal(Math.max(1, this.state.slotsTotal))
      this.bar.update(this.state.slotsDone, this.payload())
    }
  }

  /** One line above the bar, or a plain line. */
  log(line: string): void {
    if (this.opts.quiet) return
    if (this.multibar) this.multibar.log(line + '\n')
    else this.opts.write(line)
  }

  private payload(): Record<string, string | number> {
    const s = this.state
    const phaseText =
      s.phase === 'moving' ? `slot ${s.currentSlot}` : s.phase === 'scanning' ? `scanning (${s.scannedKeys} keys seen)` : s.phase
    return {keys: s.keysMoved, rate: Math.round(this.rate()), etaText: formatDuration(this.eta()), phaseText}
  }

  line(): string {
    const s = this.state
    const where = s.phase === 'moving' ? `, slot ${s.currentSlot}` : s.phase === 'scanning' ? `, ${s.scannedKeys} keys scanned` : ''
    return `[${s.job}] ${s.phase}: ${s.slotsDone}/${s.slotsTotal} slots, ${s.keysMoved}${s.keysTotal ? `/${s.keysTotal}` : ''} keys, ${Math.round(this.rate())} keys/s, ETA ${formatDuration(this.eta())}${where}`
  }

  private tick(): void {
    if (this.bar) this.bar.update(this.state.slotsDone, this.payload())
    else if (!this.opts.quiet && Date.now() - this.lastLine >= (this.opts.lineEveryMs ?? 2000)) {
      this.lastLine = Date.now()
      this.opts.write(this.line())
    }
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
    if (this.multibar) {
      this.bar?.update(this.state.slotsDone, this.payload())
      this.multibar.stop()
      this.multibar = null
      this.bar = null
    }
  }

  elapsedSec(): number {
    return (Date.now() - this.startedAt) / 1000
  }
}
