import {Args, Flags} from '@oclif/core'
import {withTopologyStore} from '../../service/context.js'
import {promoteServer} from '../../service/servers.js'
import {RstoreCommand} from '../../cli/base-command.js'

export default class ServerPromote extends RstoreCommand<typeof ServerPromote> {
  static override summary = 'Make a slave of the group its master, in Redis and in the topology.'

  static override description =
    'Writes are paused on the old master (CLIENT PAUSE WRITE) until the slave has caught up, then REPLICAOF NO ONE runs on ' +
    'the slave, the group record is switched in one transaction (new epoch), and the old master and the other slaves ' +
    'replicate from the new master. Writes that waited in the pause fail with READONLY instead of being lost. ' +
    'An old master that does not answer is skipped (failover).'

  static override examples = ['<%= config.bin %> server promote 1 127.0.0.1:6380']

  static override args = {
    group: Args.string({description: 'group id', required: true}),
    addr: Args.string({description: 'host:port of a slave of that group', required: true}),
  }

  static override flags = {
    force: Flags.boolean({description: 'promote even if the slave has not caught up with a reachable master (writes it lacks are lost)', default: false}),
    'catch-up-timeout': Flags.integer({description: 'ms to wait, with writes paused on the old master, for the slave to catch up', default: 5000, min: 100}),
  }

  public async run(): Promise<void> {
    const {group, addr} = this.args
    const res = await withTopologyStore(this.cfg, (store) =>
      promoteServer(store, group, addr, {force: this.flags.force, catchUpTimeoutMs: this.flags['catch-up-timeout']}),
    )
    for (const w of res.warnings) this.warn(w)
    this.output(res, () => {
      const lines = [`${res.master} is now the master of group ${res.group}${res.previousMaster ? ` (was ${res.previousMaster})` : ''}, epoch ${res.epoch}`]
      if (res.repointed.length) lines.push(`now replicating from ${res.master}: ${res.repointed.join(', ')}`)
      return lines.join('\n')
    })
  }
}
