import {Flags} from '@oclif/core'
import {RstoreCommand} from '../../cli/base-command.js'
import {stopAgent} from '../../ha/agent-stop.js'

export default class AgentStop extends RstoreCommand<typeof AgentStop> {
  static override description = `Stop the agent of this config (SIGTERM to the pid in its pidfile) and wait until it
has stopped its processes and exited.`

  static override examples = ['<%= config.bin %> agent stop -c config.ini']

  static override flags = {
    timeout: Flags.integer({description: 'ms to wait for the agent to exit', default: 30_000, min: 1}),
  }

  async run(): Promise<void> {
    const res = await stopAgent(this.cfg, {timeoutMs: this.flags.timeout})
    this.output(res, () => `agent pid ${res.pid} stopped (${res.waitedMs} ms)`)
  }
}
