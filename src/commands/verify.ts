import {Flags} from '@oclif/core'
import {RstoreCommand} from '../cli/base-command.js'
import {withStopSignal} from '../cli/job-front.js'
import {dispositionOf, RstoreError} from '../errors.js'
import {withTopologyStore} from '../service/context.js'
import {groupMasterAddr} from '../migrate/backfill.js'
import {parseSlots, verify} from '../migrate/verify.js'

export default class Verify extends RstoreCommand<typeof Verify> {
  static override description = `Compare every selected key of a source with a target: type, value, TTL within a tolerance.

Works Redis to SQL (after a backfill) and Redis to Redis (two copies of the same keys, such as a master and a copy of it; --slots selects keys by slot). It compares the keys the source has: after a migration the moved keys are gone from the source, so it does not check a finished migration. Runs in rounds: each round after the first re-checks only the previous round's differences, so keys in flight converge away; a key missing on the target whose source copy has expired is not a difference. Exit 0 when equal, 1 when there are differences, 2 on error.`

  static override examples = [
    '<%= config.bin %> verify --from redis --to mysql --source 127.0.0.1:6379 --target mysql://rstore:secret@127.0.0.1:3306/rstore --match "user:*"',
    '<%= config.bin %> verify --from redis --to redis --source 10.0.0.1:6379 --target 10.0.0.2:6379 --slots 0-511 --rounds 3 --interval 5',
  ]

  static override flags = {
    from: Flags.string({description: 'source kind', options: ['redis', 'mysql', 'postgres'], default: 'redis'}),
    to: Flags.string({description: 'target kind', options: ['redis', 'mysql', 'postgres'], required: true}),
    source: Flags.string({description: 'source: host:port (Redis) or URL', exactlyOne: ['source', 'group']}),
    group: Flags.integer({description: "source (--from redis): the master of this server group (read from the coordinator's topology)", exactlyOne: ['source', 'group']}),
    target: Flags.string({description: 'target: host:port (Redis) or URL (mysql://, postgres://, redis://)', required: true}),
    match: Flags.string({description: 'SCAN pattern selecting the keys', default: '*'}),
    slots: Flags.string({description: 'only keys of these slots, a-b (inclusive)'}),
    'ttl-tolerance': Flags.integer({description: 'TTL difference tolerated, in ms', default: 2000, min: 0}),
    rounds: Flags.integer({description: 'rounds; each re-checks the previous round\'s differences', default: 1, min: 1}),
    interval: Flags.string({description: 'seconds between rounds', default: '1'}),
    repair: Flags.boolean({description: 'copy the source value over every remaining difference', default: false}),
    rate: Flags.integer({description: 'at most this many keys per second (0: unlimited)', default: 0, min: 0}),
    batch: Flags.integer({description: 'keys read per batch', default: 500, min: 1}),
    'max-keys': Flags.integer({description: 'differences listed (JSON keys[] and text)', default: 100, min: 0}),
  }

  async run(): Promise<void> {
    const write = (line: string) => process.stderr.write(line + '\n')
    await withStopSignal(write, 'verify: stopping after the batch in flight (the counts so far are printed)', (signal) => this.verify(signal))
  }

  private async verify(signal: AbortSignal): Promise<void> {
    const f = this.flags
    let res
    try {
      const interval = Number(f.interval)
      if (!Number.isFinite(interval) || interval < 0) throw new RstoreError('EINVAL', `bad --interval '${f.interval}': seconds, 0 or more`)
      if (f.group !== undefined && f.from !== 'redis') throw new RstoreError('EINVAL', `--group selects a Redis server group: it needs --from redis (got --from ${f.from})`)
      const source = f.source ?? (await withTopologyStore(this.cfg, (store) => groupMasterAddr(store, f.group!)))
      res = await verify({
        from: f.from,
        to: f.to,
        source,
        target: f.target,
        match: f.match,
        slots: f.slots ? parseSlots(f.slots) : undefined,
        ttlTolerance: f['ttl-tolerance'],
        rounds: f.rounds,
        interval,
        repair: f.repair,
        rate: f.rate,
        batch: f.batch,
        maxKeys: f['max-keys'],
        signal,
      })
    } catch (e) {
      // Exit 2 on any error (EVERIFY): 1 means "differences", as diff(1) does.
      if (e instanceof RstoreError && e.code === 'EVERIFY') throw e
      throw new RstoreError('EVERIFY', (e as Error).message, e instanceof RstoreError ? e.hint : undefined)
    }
    const r = res
    this.output(r, () => {
      const lines = [`${r.state === 'stopped' ? 'stopped on request: ' : ''}compared ${r.compared} keys in ${r.rounds} round(s): ${r.equal} equal, ${r.different} different, ${r.missing} missing${f.repair ? `, ${r.repaired} repaired` : ''}`]
      for (const k of r.keys) lines.push(`  ${k.reason.padEnd(7)} ${k.key}: ${k.detail}${k.repaired ? ' (repaired)' : ''}`)
      return lines.join('\n')
    })
    if (r.state === 'stopped') process.exitCode = dispositionOf('ESTOPPED').exit
    else if (r.different + r.missing > 0) process.exitCode = 1
  }
}
