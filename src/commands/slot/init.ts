import {Flags} from '@oclif/core'
import {withTopologyStore} from '../../service/context.js'
import {initSlots} from '../../service/slots.js'
import {RstoreCommand} from '../../cli/base-command.js'

export default class SlotInit extends RstoreCommand<typeof SlotInit> {
  static override summary = 'Create the 1024 slots, all offline.'

  static override description =
    'Create the 1024 slots, all offline. Refuses to wipe an existing slot table unless --force, and while a migration job runs.'

  static override examples = ['<%= config.bin %> slot init', '<%= config.bin %> slot init --force --product shop']

  static override flags = {
    force: Flags.boolean({description: 'reset an existing slot table: every slot becomes offline (keys stay on the servers but are no longer routed)', default: false}),
  }

  public async run(): Promise<void> {
    const res = await withTopologyStore(this.cfg, (store) => initSlots(store, {force: this.flags.force}), {create: true})
    this.output(res, () => `${res.reset ? 'reset' : 'initialized'} ${res.slots} slots (all offline) for product '${this.cfg.product}', epoch ${res.epoch}`)
  }
}
