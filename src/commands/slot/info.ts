import {Args} from '@oclif/core'
import {withTopologyStore} from '../../service/context.js'
import {slotInfo} from '../../service/slots.js'
import {RstoreCommand} from '../../cli/base-command.js'
import {fields} from '../../cli/table.js'

export default class SlotInfo extends RstoreCommand<typeof SlotInfo> {
  static override description = "Show one slot's state, group and the group's master."

  static override examples = ['<%= config.bin %> slot info 5', '<%= config.bin %> slot info 5 --json']

  static override args = {
    slot: Args.string({description: 'slot id, 0..1023', required: true}),
  }

  public async run(): Promise<void> {
    const res = await withTopologyStore(this.cfg, (store) => slotInfo(store, this.args.slot))
    this.output(res, () =>
      fields([
        ['slot', res.slot.id],
        ['state', `${res.slot.state}${res.slot.pending ? ' (pending in a migration job)' : ''}${res.slot.hold ? ' (held: next to migrate, proxies park its commands)' : ''}`],
        ['group', res.slot.group || undefined],
        ['master', res.master],
        ...(res.slot.state === 'migrating' ? ([['from group', res.slot.from], ['from master', res.fromMaster]] as [string, string | number | undefined][]) : []),
        ['epoch', res.epoch],
      ]),
    )
  }
}
