/**
 * How the CLI shows a migration job's progress: a bar on a TTY (log lines above it), a plain line every
 * two seconds otherwise, nothing but errors with --json. The job reports to it through ProgressSink.
 */
import cliProgress from 'cli-progress'
import {formatDuration, type ProgressReport, type ProgressSink} from '../migrate/progress.js'

export class MigrationProgressView implements ProgressSink {
  private multibar: cliProgress.MultiBar | null = null
  private bar: cliProgress.SingleBar | null = null
  private lastLine = 0

  constructor(
    private readonly mode: {tty: boolean; quiet: boolean; write: (line: string) => void; lineEveryMs?: number},
  ) {}

  update(r: ProgressReport): void {
    if (this.mode.quiet) return
    if (this.mode.tty) {
      this.ensureBar(r)
      this.bar!.setTotal(Math.max(1, r.slotsTotal))
      this.bar!.update(r.slotsDone, payload(r))
    } else if (Date.now() - this.lastLine >= (this.mode.lineEveryMs ?? 2000) && r.phase !== 'starting') {
      this.lastLine = Date.now()
      this.mode.write(progressLine(r))
    }
  }

  log(line: string): void {
    if (this.mode.quiet) return
    if (this.multibar) this.multibar.log(line + '\n')
    else this.mode.write(line)
  }

  stop(): void {
    this.multibar?.stop()
    this.multibar = null
    this.bar = null
  }

  private ensureBar(r: ProgressReport): void {
    if (this.multibar) return
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
    this.bar = this.multibar.create(Math.max(1, r.slotsTotal), r.slotsDone, payload(r))
  }
}

function payload(r: ProgressReport): Record<string, string | number> {
  const phaseText = r.phase === 'moving' ? `slot ${r.currentSlot}` : r.phase === 'scanning' ? `scanning (${r.scannedKeys} keys seen)` : r.phase
  return {keys: r.keysMoved, rate: Math.round(r.keysPerSecond), etaText: formatDuration(r.etaSeconds), phaseText}
}

/** The plain progress line (off a TTY): `[job] phase: slots, keys, keys/s, ETA, where`. */
export function progressLine(r: ProgressReport): string {
  const where = r.phase === 'moving' ? `, slot ${r.currentSlot}` : r.phase === 'scanning' ? `, ${r.scannedKeys} keys scanned` : ''
  return `[${r.job}] ${r.phase}: ${r.slotsDone}/${r.slotsTotal} slots, ${r.keysMoved}${r.keysTotal ? `/${r.keysTotal}` : ''} keys, ${Math.round(r.keysPerSecond)} keys/s, ETA ${formatDuration(r.etaSeconds)}${where}`
}
