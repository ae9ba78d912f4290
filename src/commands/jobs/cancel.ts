import {Args} from '@oclif/core'
import {RstoreCommand} from '../../cli/base-command.js'
import {moveFlags, moveOptions, requestControl, runJobCommand, summaryText} from '../../cli/migrate-support.js'

export default class JobsCancel extends RstoreCommand<typeof JobsCancel> {
  static override description = `Cancel a migrate, rebalance or backfill job. A migration finishes its slot in flight (every
slot ends online on exactly one group); the slots not started stay where they are. A running job is
asked through the checkpoint file and stops after its slot or batches in flight; a migration that is
not running is finished here; a backfill that is not running is marked cancelled (its copies stay).`

  static override examples = ['<%= config.bin %> jobs cancel migrate-lx1k2-a1b2c3']

  static override args = {id: Args.string({description: "job id (see 'rstore jobs')", required: true})}
  static override flags = {...moveFlags}

  async run(): Promise<void> {
    const {job, running, settled} = await requestControl(this.cfg, this.args.id, 'cancel')
    if (settled) {
      this.output({job: job.id, state: 'cancelled'}, () => settled)
      return
    }
    if (running) {
      this.output({job: job.id, requested: 'cancel'}, () => `cancel requested: job ${job.id} finishes its slot or batches in flight, then stops`)
      return
    }
    const summary = await runJobCommand(this.cfg, {kind: 'resume', job: job.id, cancel: true}, moveOptions(this.flags), {json: this.flags.json, write: (l) => this.logToStderr(l)})
    this.output(summary, () => summaryText(summary))
  }
}
