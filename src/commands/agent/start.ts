import {hostname} from 'node:os'
import {Flags} from '@oclif/core'
import {RstoreCommand} from '../../cli/base-command.js'
import {ValidationError} from '../../errors.js'
import {runAgent} from '../../ha/agent.js'
import {DEFAULT_FAILOVER_BARRIER_MS} from '../../ha/failover-barrier.js'
import {DEFAULT_LEADER_TTL_SEC} from '../../ha/leader.js'
import {DEFAULT_CHECK_INTERVAL_MS, DEFAULT_DOWN_AFTER_MS} from '../../ha/master-watch.js'

export default class AgentStart extends RstoreCommand<typeof AgentStart> {
  static override description = `Run the processes of the config's [agent] section and keep them running.
Each exited process is started again after a backoff (doubling, capped); its output goes to
<log_dir>/<name>.log and its pid to <name>.pid beside the agent pidfile. Runs until SIGTERM, Ctrl-C
or 'rstore agent stop', then stops every process (docs/agent.md).`

  static override examples = ['<%= config.bin %> agent start -c config.ini --http-addr 127.0.0.1:11100']

  static override flags = {
    'http-addr': Flags.string({description: 'address of GET /status (none: no HTTP)'}),
    ha: Flags.boolean({description: "take part in the election of the product's leader agent (coordinator lease)", default: false}),
    'ha-id': Flags.string({description: 'this agent\'s id in the election (default: <host>:<pid>)'}),
    'ha-lease-ttl': Flags.integer({description: 'leader lease TTL, seconds: a dead leader is replaced within it', default: DEFAULT_LEADER_TTL_SEC, min: 2, max: 60}),
    'ha-check-interval': Flags.integer({description: 'ms between two checks of every master by the leader', default: DEFAULT_CHECK_INTERVAL_MS, min: 100}),
    'ha-down-after': Flags.integer({description: 'ms of failed checks after which the leader promotes a replica', default: DEFAULT_DOWN_AFTER_MS, min: 200}),
    'ha-barrier-timeout': Flags.integer({description: 'ms the proxies get to apply a failover\'s epoch; one that does not is set offline', default: DEFAULT_FAILOVER_BARRIER_MS, min: 100}),
    'stop-grace': Flags.integer({description: 'ms between SIGTERM and SIGKILL when stopping a process', default: 10_000, min: 0}),
  }

  async run(): Promise<void> {
    const f = this.flags
    // oclif's dependsOn does not see a flag given with its default value: refuse by what was typed.
    const haOnly = this.argv.filter((a) => /^--ha-[a-z-]+/.test(a)).map((a) => a.split('=')[0])
    if (!f.ha && haOnly.length) throw new ValidationError(`${haOnly.join(', ')} ${haOnly.length > 1 ? "apply" : "applies"} only with --ha: add --ha or leave ${haOnly.length > 1 ? 'them' : 'it'} out`)
    const ha = f.ha ? {id: f['ha-id'] ?? `${hostname()}:${process.pid}`, leaseTtlSec: f['ha-lease-ttl'], checkIntervalMs: f['ha-check-interval'], downAfterMs: f['ha-down-after'], barrierTimeoutMs: f['ha-barrier-timeout']} : undefined
    await runAgent(this.cfg, {httpAddr: f['http-addr'], stopGraceMs: f['stop-grace'], ha}, (line) => this.log(line))
  }
}
