import {RstoreCommand} from '../../cli/base-command.js'
import {table} from '../../cli/table.js'
import {withTopologyStore} from '../../service/context.js'
import {listProxies} from '../../service/proxies.js'

export default class ProxyList extends RstoreCommand<typeof ProxyList> {
  static override description = 'List the registered proxies: id, address, state, applied epoch, uptime.'
  static override examples = ['<%= config.bin %> proxy list', '<%= config.bin %> proxy list --json']

  async run(): Promise<void> {
    const proxies = await withTopologyStore(this.cfg, (store) => listProxies(store))
    this.output(proxies, () =>
      proxies.length === 0
        ? 'no proxies registered'
        : table(
            ['ID', 'ADDR', 'HTTP', 'STATE', 'EPOCH', 'UPTIME', 'ERROR'],
            proxies.map((p) => [p.id, p.addr, p.httpAddr, p.state, p.appliedEpoch, `${Math.floor((Date.now() - p.startedAt) / 1000)}s`, p.error]),
          ),
    )
  }
}
