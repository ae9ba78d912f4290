import {Args} from '@oclif/core'
import {withTopologyStore} from '../../service/context.js'
import {removeGroup} from '../../service/servers.js'
import {RstoreCommand} from '../../cli/base-command.js'

export default class ServerRemoveGroup extends RstoreCommand<typeof ServerRemoveGroup> {
  static override description = 'Delete a server group. Refused while it serves a slot (online, or migrating to or from it).'

  static override examples = ['<%= config.bin %> server remove-group 3']

  static override args = {
    group: Args.string({description: 'group id', required: true}),
  }

  public async run(): Promise<void> {
    const res = await withTopologyStore(this.cfg, (store) => removeGroup(store, this.args.group))
    this.output(res, () => `group ${res.group} removed, epoch ${res.epoch}`)
  }
}
