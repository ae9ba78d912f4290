import {Args, Flags} from '@oclif/core'
import {withTopologyStore} from '../../service/context.js'
import {setSlotRange} from '../../service/slots.js'
import {RstoreCommand} from '../../cli/base-command.js'

export default class SlotRangeSet extends RstoreCommand<typeof SlotRangeSet> {
  static override summary = 'Assign slots <from>..<to> to a group, online or offline.'

  static override description =
    'Assign the slots <from>..<to> (inclusive) to a group, online or offline, in one change. For empty or offline slots: moving online slots with their keys is `rstore migrate`.'

  static override examples = ['<%= config.bin %> slot range-set 0 511 1 online', '<%= config.bin %> slot range-set 512 1023 2 online']

  static override args = {
    from: Args.string({description: 'first slot, 0..1023', required: true}),
    to: Args.string({description: 'last slot (inclusive), >= from', required: true}),
    group: Args.string({description: 'group id (must exist and have a master)', required: true}),
    status: Args.string({description: 'online | offline', required: true}),
  }

  static override flags = {
    force: Flags.boolean({description: 'allow moving ONLINE slots to another group (only for slots known to hold no keys)', default: false}),
  }

  public async run(): Promise<void> {
    const {from, to, group, status} = this.args
    const res = await withTopologyStore(this.cfg, (store) => setSlotRange(store, from, to, group, status, {force: this.flags.force}))
    this.output(res, () =>
      res.changed
        ? `slots ${res.from}-${res.to} -> group ${res.group} ${res.state} (${res.changed} changed), epoch ${res.epoch}`
        : `slots ${res.from}-${res.to} are already ${res.state} in group ${res.group} (nothing changed)`,
    )
  }
}
