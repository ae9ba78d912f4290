import {RstoreCommand} from '../../cli/base-command.js'
import {withTopologyStore} from '../../admin/context.js'
import {listProxies} from '../../admin/proxies.js'

export default class ProxyList extends RstoreCommand<typeof ProxyList> {
  static override description = 'List the registered proxies: id, address, state, applied epoch, uptime.'
  static override examples = ['<%= config.bin %> proxy list', '<%= config.bin %> proxy list --json']

  async run(): Promise<void> {
    const proxies = await withTopologyStore(this.cfg, (store) => listProxies(store))
    this.output(proxies, () => {
      if (proxies.length === 0) return 'no proxies registered'
      const rows = proxies.map((p) => [
        p.id, p.addr, p.httpAddr, p.state, String(p.appliedEpoch), `${Math.floor((Date.now() - p.startedAt) / 1000)}s`, p.error ?? '',
      ])
      const head = ['ID', 'ADDR', 'HTTP', 'STATE', 'EPOCH', 'UPTIME', 'ERROR']
      const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
      return [head, ...rows].map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n')
    })
  }
}
