import {Args} from '@oclif/core'
import {RstoreCommand} from '../../cli/base-command.js'
import {withTopologyStore} from '../../service/context.js'
import {setProxyState} from '../../service/proxies.js'

export default class ProxyOnline extends RstoreCommand<typeof ProxyOnline> {
  static override description = 'Open a proxy: it starts serving routed commands.'
  static override examples = ['<%= config.bin %> proxy online proxy_1']
  static override args = {id: Args.string({description: 'proxy id', required: true})}

  async run(): Promise<void> {
    const proxies = await withTopologyStore(this.cfg, (store) => setProxyState(store, this.args.id, 'online'))
    this.output(proxies, () => proxies.map((p) => `proxy ${p.id} is online (epoch ${p.appliedEpoch})`).join('\n'))
  }
}
