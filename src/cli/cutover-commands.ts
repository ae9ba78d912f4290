import {Args, Flags, type Command} from '@oclif/core'
import {withTopologyStore} from '../service/context.js'
import {abortCutover, cutoverStatus, finishCutover, startCutover, switchCutover, type CutoverResult} from '../service/cutover.js'
import {RstoreCommand} from './base-command.js'
import {withStopSignal} from './job-front.js'
import {fields} from './table.js'

const nameArg = {name: Args.string({description: 'cutover name', required: true})}
const barrierFlag = Flags.integer({description: 'seconds to wait for every proxy to apply the step', default: 30})

const DESCRIPTIONS = {
  start: 'Start a double-write cutover of a rule\'s key space to a db group: writes go to the old place (still the read source) and each written key\'s resulting value is copied to the new group. Then run rstore backfill.',
  switch: 'Move reads to the new db group, after verifying that both sides hold the same keys (or --force). Writes keep going to both sides. While the proxies change sides the key space\'s writes wait (two barriers, typically milliseconds).',
  finish: 'Stop writing the old place: the rule now routes to the new db group only.',
  abort: 'Return to the old place, from any step, with nothing lost (the old side kept receiving every write). After switch the key space\'s writes wait while the proxies change sides.',
} as const

function text(action: string, res: CutoverResult): string {
  const c = res.cutover
  const lines = [`cutover ${c.name} (rule ${c.rule} -> dbgroup ${c.to}): ${c.step}, epoch ${res.epoch}, proxies applied it in ${res.barrierMs} ms`]
  if (res.verify) lines.push(`verify: ${res.verify.compared} keys compared, ${res.verify.different} differences`)
  if (action === 'start') lines.push(`next: rstore backfill (set-if-absent) into ${c.to}, then rstore cutover switch ${c.name}`)
  return lines.join('\n')
}

export function makeCutoverCommand(action: 'start' | 'switch' | 'finish' | 'abort'): typeof Command {
  class Step extends RstoreCommand<typeof Step> {
    static override description = DESCRIPTIONS[action]
    static override args = nameArg
    static override flags = {
      'barrier-timeout': barrierFlag,
      ...(action === 'start'
        ? {rule: Flags.string({description: 'the rule whose key space moves', required: true}), to: Flags.string({description: 'the db group it moves to', required: true})}
        : {}),
      ...(action === 'switch' ? {force: Flags.boolean({description: 'switch without verifying', default: false})} : {}),
    }
    public async run(): Promise<void> {
      const f = this.flags as Record<string, unknown>
      const name = this.args.name as string
      const log = (l: string) => process.stderr.write(`${l}\n`)
      const stopping = `cutover ${name}: stopping (a step already written stays; see 'rstore cutover status ${name}')`
      const res = await withStopSignal(log, stopping, (signal) => withTopologyStore(this.cfg, (store) => {
        const opts = {barrierTimeoutMs: Number(f['barrier-timeout']) * 1000, log, signal}
        switch (action) {
          case 'start':
            return startCutover(store, this.cfg, name, f.rule as string, f.to as string, opts)
          case 'switch':
            return switchCutover(store, this.cfg, name, {...opts, force: f.force as boolean})
          case 'finish':
            return finishCutover(store, this.cfg, name, opts)
          case 'abort':
            return abortCutover(store, this.cfg, name, opts)
        }
      }))
      this.output(res, () => text(action, res))
    }
  }
  return Step as unknown as typeof Command
}

export class CutoverStatusCommand extends RstoreCommand<typeof CutoverStatusCommand> {
  static override description = 'Show where a cutover is: its step, history, and the proxies that have not applied it yet.'
  static override args = nameArg
  public async run(): Promise<void> {
    const res = await withTopologyStore(this.cfg, (store) => cutoverStatus(store, this.cfg, this.args.name))
    const c = res.cutover
    this.output(res, () =>
      fields([
        ['cutover', c.name],
        ['rule', c.rule],
        ['to', c.to],
        ['from shard', c.fromShard],
        ['step', c.hold ? `${c.step}, writes held (a switch or an abort stopped midway: run it again)` : c.step],
        ['history', c.history.map((h) => `${h.step}@epoch ${h.epoch} (${new Date(h.at).toISOString()})`).join(', ')],
        ['proxies behind', res.proxiesBehind.join(', ') || 'none'],
        ['checkpoint job', res.job ? `${res.job.id} (${res.job.state})` : undefined],
      ]),
    )
  }
}
