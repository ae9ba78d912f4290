import {Args, Flags} from '@oclif/core'
import {withTopologyStore} from '../../service/context.js'
import {setSlot} from '../../service/slots.js'
import {RstoreCommand} from '../../cli/base-command.js'

export default class SlotSet extends RstoreCommand<typeof SlotSet> {
  static override summary = 'Assign one slot to a group, online or offline.'

  static override description =
    'Assign one slot to a group, online or offline. For empty or offline slots: moving an online slot with its keys is `rstore migrate`.'

  static override examples = ['<%= config.bin %> slot set 5 1 online', '<%= config.bin %> slot set 5 1 offline']

  static override args = {
    slot: Args.string({description: 'slot id, 0..1023', required: true}),
    group: Args.string({description: 'group id (must exist and have a master)', required: true}),
    status: Args.string({description: 'online | offline', required: true}),
  }

  static override flags = {
    force: Flags.boolean({description: 'allow moving an ONLINE slot to another group (only for a slot known to hold no keys)', default: false}),
  }

  public async run(): Promise<void> {
    const {slot, group, status} = this.args
    const res = await withTopologyStore(this.cfg, (store) => setSlot(store, slot, group, status, {force: this.flags.force}))
    this.output(res, () =>
      res.changed ? `slot ${res.from} -> group ${res.group} ${res.state}, epoch ${res.epoch}` : `slot ${res.from} is already ${res.state} in group ${res.group} (nothing changed)`,
    )
  }
}
