/**
 * The CLI side of every job (migrate, rebalance, backfill, jobs resume|cancel): Ctrl-C / SIGTERM turn
 * into the job's AbortSignal (the job stops after its batch in flight and stays resumable; a second
 * Ctrl-C exits at once), `--nice`, and the progress line of count-based jobs (a bar on a TTY, a plain
 * line every second otherwise). A server process gives the same job functions its own signal and sink.
 */
import cliProgress from 'cli-progress'
import {getPriority, setPriority} from 'node:os'
import {dispositionOf} from '../errors.js'
import {formatDuration} from '../migrate/progress.js'

/** Runs fn with an AbortSignal that SIGINT / SIGTERM abort; `stopping` is printed on the first one. */
export async function withStopSignal<T>(write: (line: string) => void, stopping: string, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ctl = new AbortController()
  let signals = 0
  const onSignal = () => {
    if (++signals > 1) process.exit(dispositionOf('ESTOPPED').exit)
    write(stopping)
    ctl.abort()
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  try {
    return await fn(ctl.signal)
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
}

/** Raises this process's nice value to at least `nice` (never lowers it), so proxies and Redis on the host serve first. */
export function lowerPriority(nice: number, warn: (line: string) => void): void {
  if (nice <= 0) return
  try {
    if (getPriority() < nice) setPriority(nice)
  } catch (err) {
    warn(`warning: cannot lower this process's CPU priority (--nice ${nice}): ${(err as Error).message}`)
  }
}

/** An ETA for a progress line: the job's duration format, '?' while unknown. */
export function formatEta(sec: number | null): string {
  return sec === null || !Number.isFinite(sec) ? '?' : formatDuration(sec)
}

export interface CountProgress {
  done: number
  total: number
  keysPerSec: number
  etaSeconds: number | null
  /** The end of the plain line (counters), e.g. "copied 10, failed 0". */
  detail: string
  /** Shown instead of the rate while the job waits (e.g. "paused"). */
  status?: string
}

/** A progress bar of keys done out of a total on a TTY, a plain line every second on a pipe, nothing with --json. */
export class CountBar {
  private bar: cliProgress.SingleBar | undefined
  private lastLine = 0

  constructor(
    private readonly label: string,
    private readonly mode: {tty: boolean; quiet: boolean; write: (line: string) => void},
  ) {}

  start(total: number, done: number): void {
    if (!this.mode.tty || this.mode.quiet) return
    this.bar = new cliProgress.SingleBar(
      {format: `${this.label} [{bar}] {percentage}% | {value}/{total} keys | {status} | ETA {eta_h}`, stream: process.stderr, hideCursor: true},
      cliProgress.Presets.shades_classic,
    )
    this.bar.start(Math.max(total, done), done, {status: '0 keys/s', eta_h: '?'})
  }

  update(p: CountProgress): void {
    const rate = p.status ?? `${Math.round(p.keysPerSec)} keys/s`
    if (this.bar) {
      this.bar.setTotal(Math.max(p.total, p.done))
      this.bar.update(p.done, {status: rate, eta_h: formatEta(p.etaSeconds)})
    } else if (!this.mode.quiet && Date.now() - this.lastLine >= 1000) {
      this.lastLine = Date.now()
      const pct = p.total ? ` (${Math.min(100, Math.floor((100 * p.done) / p.total))}%)` : ''
      this.mode.write(`${this.label}: ${p.done}/${p.total} keys${pct}, ${rate}, ETA ${formatEta(p.etaSeconds)}; ${p.detail}`)
    }
  }

  stop(): void {
    this.bar?.stop()
    this.bar = undefined
  }
}
