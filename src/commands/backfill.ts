import {Flags} from '@oclif/core'
import cliProgress from 'cli-progress'
import {RstoreCommand} from '../cli/base-command.js'
import {RstoreError} from '../errors.js'
import {withTopologyStore} from '../service/context.js'
import {backfill, groupMasterAddr, type BackfillProgress} from '../migrate/backfill.js'

const fmtEta = (s: number | null) => (s === null ? '?' : s < 90 ? `${Math.ceil(s)}s` : s < 5400 ? `${Math.ceil(s / 60)}m` : `${(s / 3600).toFixed(1)}h`)

export default class Backfill extends RstoreCommand<typeof Backfill> {
  static override description = `Copy keys from Redis to MySQL, PostgreSQL or Redis, never overwriting a key present on the target.

Set-if-absent per key (INSERT IGNORE / ON CONFLICT DO NOTHING, RESTORE without REPLACE), so values written on the target by double-write win. Batched, pipelined and throttled; the SCAN cursor and counters are checkpointed in <checkpoint-dir>/<product>.db: re-running the same command after a crash resumes. Exits 1 when some keys failed (they are listed).`

  static override examples = [
    '<%= config.bin %> backfill --from redis --to mysql --source 127.0.0.1:6379 --target mysql://rstore:secret@127.0.0.1:3306/rstore --match "user:*"',
    '<%= config.bin %> backfill --from redis --to mysql --group 2 --target mysql://rstore:secret@127.0.0.1:3306/rstore',
    '<%= config.bin %> backfill --from redis --to postgres --source 10.0.0.5:6379 --target postgres://u:p@db:5432/app --concurrency 8 --rate 20000',
  ]

  static override flags = {
    from: Flags.string({description: 'source kind', options: ['redis'], default: 'redis'}),
    to: Flags.string({description: 'target kind', options: ['mysql', 'postgres', 'redis'], required: true}),
    source: Flags.string({description: 'source Redis host:port', exactlyOne: ['source', 'group']}),
    group: Flags.integer({description: "source: the master of this server group (read from the coordinator's topology)", exactlyOne: ['source', 'group']}),
    target: Flags.string({description: 'target URL: mysql://user:pass@host:port/db, postgres://..., redis://host:port', required: true}),
    match: Flags.string({description: 'SCAN pattern selecting the keys', default: '*'}),
    concurrency: Flags.integer({description: 'batches in flight at once', default: 4, min: 1}),
    rate: Flags.integer({description: 'at most this many keys per second (0: unlimited)', default: 0, min: 0}),
    delay: Flags.integer({description: 'milliseconds to sleep after each key copied, per worker', default: 0, min: 0}),
    batch: Flags.integer({description: 'keys per batch (one read pipeline, one write transaction)', default: 500, min: 1}),
  }

  async run(): Promise<void> {
    const f = this.flags
    const tty = !f.json && Boolean(process.stderr.isTTY)
    let bar: cliProgress.SingleBar | undefined
    let lastLine = 0
    const onProgress = (p: BackfillProgress) => {
      const done = p.scanned
      if (bar) {
        bar.setTotal(Math.max(p.total, done))
        bar.update(done, {kps: Math.round(p.keysPerSec), eta_h: fmtEta(p.etaSeconds)})
      } else if (!f.json && Date.now() - lastLine >= 1000) {
        lastLine = Date.now()
        const pct = p.total ? ` (${Math.min(100, Math.floor((100 * done) / p.total))}%)` : ''
        process.stderr.write(`backfill: ${done}/${p.total} keys${pct}, ${Math.round(p.keysPerSec)} keys/s, ETA ${fmtEta(p.etaSeconds)}; copied ${p.copied}, present ${p.skipped}, expired/deleted ${p.expired}, failed ${p.failed}\n`)
      }
    }
    let stopResolve: () => void = () => {}
    const stop = new Promise<void>((r) => (stopResolve = r))
    const onSignal = () => {
      process.stderr.write('backfill: stopping after the batches in flight (the job is paused; re-run to resume)\n')
      stopResolve()
    }
    process.once('SIGINT', onSignal)
    process.once('SIGTERM', onSignal)
    try {
      const source = f.source ?? (await withTopologyStore(this.cfg, (store) => groupMasterAddr(store, f.group!)))
      if (f.group !== undefined && !f.json) process.stderr.write(`backfill: group ${f.group}'s master is ${source}\n`)
      const res = await backfill({
        from: f.from,
        to: f.to,
        source,
        target: f.target,
        match: f.match,
        concurrency: f.concurrency,
        rate: f.rate,
        delay: f.delay,
        batch: f.batch,
        checkpointDir: this.cfg.checkpointDir,
        product: this.cfg.product,
        stop,
        onStart: (info) => {
          if (!f.json) process.stderr.write(`backfill: job ${info.job}${info.resumed ? ` resumed at ${info.done} keys` : ''}; source holds ${info.total} keys\n`)
          if (tty) {
            bar = new cliProgress.SingleBar({
              format: 'backfill [{bar}] {percentage}% | {value}/{total} keys | {kps} keys/s | ETA {eta_h}',
              stream: process.stderr,
              hideCursor: true,
            }, cliProgress.Presets.shades_classic)
            bar.start(Math.max(info.total, info.done), info.done, {kps: 0, eta_h: '?'})
          }
        },
        onProgress,
      })
      bar?.stop()
      this.output(res, () => {
        const lines = [
          `backfill ${res.job} ${res.state}${res.resumed ? ' (resumed)' : ''}: ${res.scanned} keys scanned in ${res.seconds.toFixed(1)}s (${Math.round(res.keysPerSec)} keys/s)`,
          `  copied ${res.copied}, skipped (present on target) ${res.skipped}, expired/deleted ${res.expired}, failed ${res.failed}`,
        ]
        for (const k of res.failedKeys) lines.push(`  failed key ${k.key}: ${k.error}`)
        return lines.join('\n')
      })
      if (res.failed > 0) {
        process.stderr.write(`Error: ${res.failed} key(s) could not be copied (recorded in the checkpoint; see the list above)\n`)
        process.exitCode = 1
      } else if (res.state === 'paused') process.exitCode = 130
    } catch (e) {
      bar?.stop()
      throw e instanceof RstoreError || !(e instanceof Error) ? e : new RstoreError('EBACKFILL', e.message)
    } finally {
      process.removeListener('SIGINT', onSignal)
      process.removeListener('SIGTERM', onSignal)
    }
  }
}
