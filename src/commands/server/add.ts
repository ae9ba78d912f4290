import {Args} from '@oclif/core'
import {withTopologyStore} from '../../service/context.js'
import {addServer} from '../../service/servers.js'
import {RstoreCommand} from '../../cli/base-command.js'

export default class ServerAdd extends RstoreCommand<typeof ServerAdd> {
  static override summary = 'Add a Redis server to a group (created if missing); it must answer PING.'

  static override description =
    "A group has at most one master. A slave is told REPLICAOF <master> (its data is replaced by the master's). " +
    'A new master must not itself be a replica, and the slaves already in the group are pointed at it.'

  static override examples = ['<%= config.bin %> server add 1 127.0.0.1:6379 master', '<%= config.bin %> server add 1 127.0.0.1:6380 slave']

  static override args = {
    group: Args.string({description: 'group id, >= 1', required: true}),
    addr: Args.string({description: 'host:port, redis://[user:pass@]host:port or rediss://... (TLS) of the redis-server', required: true}),
    role: Args.string({description: 'master | slave', required: true}),
  }

  public async run(): Promise<void> {
    const {group, addr, role} = this.args
    const res = await withTopologyStore(this.cfg, (store) => addServer(store, group, addr, role))
    for (const w of res.warnings) this.warn(w)
    this.output(res, () => {
      const lines = [`${res.addr} added to ${res.createdGroup ? 'new ' : ''}group ${res.group} as ${res.role}, epoch ${res.epoch}`]
      if (res.replicaOf) lines.push(`${res.addr} now replicates from ${res.replicaOf}`)
      if (res.repointed.length) lines.push(`slaves now replicating from ${res.addr}: ${res.repointed.join(', ')}`)
      return lines.join('\n')
    })
  }
}
