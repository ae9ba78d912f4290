import {Args} from '@oclif/core'
import {withTopologyStore} from '../../service/context.js'
import {removeServer} from '../../service/servers.js'
import {RstoreCommand} from '../../cli/base-command.js'

export default class ServerRemove extends RstoreCommand<typeof ServerRemove> {
  static override summary = 'Remove a server from its group.'

  static override description =
    'Remove a server from its group (the record only: the server itself is not touched). The master of a group that serves slots cannot be removed: promote another server first.'

  static override examples = ['<%= config.bin %> server remove 1 127.0.0.1:6380']

  static override args = {
    group: Args.string({description: 'group id', required: true}),
    addr: Args.string({description: 'host:port of the server', required: true}),
  }

  public async run(): Promise<void> {
    const {group, addr} = this.args
    const res = await withTopologyStore(this.cfg, (store) => removeServer(store, group, addr))
    this.output(res, () => `${res.addr} (${res.role}) removed from group ${res.group}, epoch ${res.epoch}`)
  }
}
