import {Flags} from '@oclif/core'
import {RstoreCommand} from '../cli/base-command.js'
import {CountBar, withStopSignal} from '../cli/job-front.js'
import {dispositionOf, RstoreError} from '../errors.js'
import {withTopologyStore} from '../service/context.js'
import {backfill, groupMasterAddr, type BackfillProgress} from '../migrate/backfill.js'


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
    const write = (line: string) => process.stderr.write(line + '\n')
    const bar = new CountBar('backfill', {tty: !f.json && Boolean(process.stderr.isTTY), quiet: f.json, write})
    const onProgress = (p: BackfillProgress) =>
      bar.update({
        done: p.scanned,
        total: p.total,
        keysPerSec: p.keysPerSec,
        etaSeconds: p.etaSeconds,
        status: p.paused ? "paused ('rstore jobs resume' continues)" : undefined,
        detail: `copied ${p.copied}, present ${p.skipped}, expired/deleted ${p.expired}, failed ${p.failed}`,
      })
    const stopping = 'backfill: stopping after the batches in flight (the job is paused; re-run to resume)'
    await withStopSignal(write, stopping, async (signal) => {
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
          signal,
          onStart: (info) => {
            if (!f.json) write(`backfill: job ${info.job}${info.resumed ? ` resumed at ${info.done} keys` : ''}; source holds ${info.total} keys`)
            bar.start(info.total, info.done)
          },
          onProgress,
        })
        bar.stop()
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
          process.exitCode = dispositionOf('EBACKFILL').exit
        } else if (res.state === 'paused') process.exitCode = dispositionOf('ESTOPPED').exit
      } catch (e) {
        bar.stop()
        throw e instanceof RstoreError || !(e instanceof Error) ? e : new RstoreError('EBACKFILL', e.message)
      }
    })
  }
}
