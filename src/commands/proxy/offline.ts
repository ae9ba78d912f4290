import {Args} from '@oclif/core'
import {RstoreCommand} from '../../cli/base-command.js'
import {withTopologyStore} from '../../service/context.js'
import {setProxyState} from '../../service/proxies.js'

export default class ProxyOffline extends RstoreCommand<typeof ProxyOffline> {
  static override description = 'Drain a proxy: it refuses routed commands and finishes those in flight.'
  static override examples = ['<%= config.bin %> proxy offline proxy_1']
  static override args = {id: Args.string({description: 'proxy id', required: true})}

  async run(): Promise<void> {
    const proxies = await withTopologyStore(this.cfg, (store) => setProxyState(store, this.args.id, 'offline'))
    this.output(proxies, () => proxies.map((p) => `proxy ${p.id} is offline (epoch ${p.appliedEpoch})`).join('\n'))
  }
}
