import {Args} from '@oclif/core'
import {withTopologyStore} from '../../service/context.js'
import {addGroup} from '../../service/servers.js'
import {RstoreCommand} from '../../cli/base-command.js'

export default class ServerAddGroup extends RstoreCommand<typeof ServerAddGroup> {
  static override description = 'Create an empty server group (ids are integers >= 1).'

  static override examples = ['<%= config.bin %> server add-group 1']

  static override args = {
    group: Args.string({description: 'group id, >= 1', required: true}),
  }

  public async run(): Promise<void> {
    const res = await withTopologyStore(this.cfg, (store) => addGroup(store, this.args.group))
    this.output(res, () => `group ${res.group} created, epoch ${res.epoch}`)
  }
}
