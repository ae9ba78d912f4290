import {Args} from '@oclif/core'
import {RstoreCommand} from '../../cli/base-command.js'
import {moveFlags, moveOptions, requestControl, runJobCommand, summaryText} from '../../cli/migrate-support.js'

export default class JobsResume extends RstoreCommand<typeof JobsResume> {
  static override description = `Resume a migrate, rebalance or backfill job: a paused running job continues; a migration
that is not running (interrupted, failed, stopped) is run here in the foreground until it ends (a
backfill that is not running is continued by running its backfill command again).`

  static override examples = ['<%= config.bin %> jobs resume migrate-lx1k2-a1b2c3']

  static override args = {id: Args.string({description: "job id (see 'rstore jobs')", required: true})}
  static override flags = {...moveFlags}

  async run(): Promise<void> {
    const {job, running} = await requestControl(this.cfg, this.args.id, 'run')
    if (running) {
      this.output({job: job.id, requested: 'resume'}, () => `resume requested: job ${job.id} continues`)
      return
    }
    const summary = await runJobCommand(this.cfg, {kind: 'resume', job: job.id}, moveOptions(this.flags), {json: this.flags.json, write: (l) => this.logToStderr(l)})
    this.output(summary, () => summaryText(summary))
  }
}
