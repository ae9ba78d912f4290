import {Args} from '@oclif/core'
import {withTopologyStore} from '../service/context.js'
import {routeKey} from '../service/route.js'
import {RstoreCommand} from '../cli/base-command.js'
import {fields} from '../cli/table.js'

export default class Route extends RstoreCommand<typeof Route> {
  static override description = [
    'Show the path a key takes: with rules configured, the rule, its capture (the shard key), the shard chain,',
    'the db group and its units; a key no rule matches is "not registered". With no rules, the slot, its state and group.',
  ].join('\n')

  static override examples = ['<%= config.bin %> route user:42:name', '<%= config.bin %> route user:42:name --json']

  static override args = {
    key: Args.string({description: 'the key (as text)', required: true}),
  }

  public async run(): Promise<void> {
    const res = await withTopologyStore(this.cfg, (store) => routeKey(store, this.args.key))
    this.output(res, () => {
      if (res.kind === 'slot') {
        return fields([
          ['key', res.key],
          ['route', 'slot (no rules configured)'],
          ['slot', res.slot],
          ['state', res.pending ? `${res.state} (pending in a migration job)` : res.state],
          ['group', res.group || undefined],
          ['master', res.master],
          ...(res.from !== undefined ? ([['from group', res.from]] as [string, number][]) : []),
          ['epoch', res.epoch],
        ])
      }
      if (res.kind === 'unregistered') {
        return fields([
          ['key', res.key],
          ['route', 'not registered'],
          ['reason', res.error],
          ['epoch', res.epoch],
        ])
      }
      const p = res.path
      return fields([
        ['key', res.key],
        ['rule', `${p.rule} (order ${p.order})`],
        ['capture', `${p.capture} (group ${p.hashSlot}${p.hashSlot === 0 ? ' = whole key' : ''})`],
        ['shards', p.chain.map((s) => `${s.shard}[${s.shardType}${s.shardStr ? ` ${s.shardStr}` : ''}] -> ${s.refType} ${s.refName}`).join(', ')],
        ['dbgroup', `${res.group.name} (${res.group.type}, ${res.group.replicateMode}${res.group.enable ? '' : ', DISABLED'}${res.group.cache ? `, cache ${res.group.cache}` : ''})`],
        ['units', res.members.map((m) => `${m.unit}${m.isMaster ? ' master' : ' slave'} r${m.readWeight}${m.enable ? '' : ' disabled'} ${m.address}`).join('; ')],
        ['reads', res.readUnits.join(', ')],
        ['writes', res.writeUnits.join(', ')],
        ['epoch', res.epoch],
      ])
    })
  }
}
