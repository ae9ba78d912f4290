import {Flags} from '@oclif/core'
import {RstoreCommand} from '../cli/base-command.js'
import {runDashboard} from '../http/dashboard.js'

export default class Dashboard extends RstoreCommand<typeof Dashboard> {
  static override summary = 'Serve the admin REST API (one active dashboard per product).'
  static override description = `Serve the admin REST API on --addr (default dashboard_addr of the config) until SIGTERM or Ctrl-C.
Tokens come from RSTORE_ADMIN_TOKEN / RSTORE_READ_TOKEN or the file named by admin_token_file, never a flag.
A second dashboard of the same product is refused; one killed without a clean stop frees its lock within a few seconds.
See docs/dashboard.md.`

  static override examples = ['RSTORE_ADMIN_TOKEN=... <%= config.bin %> dashboard -c config.ini --addr 127.0.0.1:18087']

  static override flags = {
    addr: Flags.string({description: 'listen address host:port (default: dashboard_addr of the config)'}),
    'lock-ttl': Flags.integer({description: 'lease TTL of the dashboard lock, seconds', default: 5, min: 1, hidden: true}),
  }

  async run(): Promise<void> {
    await runDashboard(this.cfg, {addr: this.flags.addr ?? this.cfg.dashboardAddr, lockTtlSec: this.flags['lock-ttl'], log: (l) => this.log(l)})
  }
}
