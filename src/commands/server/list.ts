import {withTopologyStore} from '../../service/context.js'
import {listServers} from '../../service/servers.js'
import {RstoreCommand} from '../../cli/base-command.js'
import {table} from '../../cli/table.js'

export default class ServerList extends RstoreCommand<typeof ServerList> {
  static override description = 'List the server groups, their servers and roles, and how many slots each group serves.'

  static override examples = ['<%= config.bin %> server list', '<%= config.bin %> server list --json']

  public async run(): Promise<void> {
    const res = await withTopologyStore(this.cfg, (store) => listServers(store))
    this.output(res, () => {
      if (!res.groups.length) return `no server groups in product '${this.cfg.product}': add one with 'rstore server add <group> <host:port> master'`
      const rows: (string | number | undefined)[][] = []
      for (const g of res.groups) {
        if (!g.servers.length) rows.push([g.id, undefined, undefined, g.slots])
        for (const s of g.servers) rows.push([g.id, s.addr, s.role, g.slots])
      }
      return `${table(['GROUP', 'SERVER', 'ROLE', 'SLOTS'], rows)}\nepoch ${res.epoch}`
    })
  }
}
