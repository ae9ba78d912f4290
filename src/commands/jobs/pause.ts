import {Args} from '@oclif/core'
import {RstoreCommand} from '../../cli/base-command.js'
import {requestControl} from '../../cli/migrate-support.js'

export default class JobsPause extends RstoreCommand<typeof JobsPause> {
  static override description = `Pause a running migrate, rebalance or backfill job after its batch in flight. A slot in
flight stays migrating (the proxies keep serving it); a backfill waits in place; 'rstore jobs resume
<id>' continues.`

  static override examples = ['<%= config.bin %> jobs pause migrate-lx1k2-a1b2c3']

  static override args = {id: Args.string({description: "job id (see 'rstore jobs')", required: true})}

  async run(): Promise<void> {
    const {job} = await requestControl(this.cfg, this.args.id, 'pause')
    this.output({job: job.id, requested: 'pause'}, () => `pause requested: job ${job.id} pauses after its batch in flight`)
  }
}
