import {RstoreCommand} from '../../cli/base-command.js'
import {listingText} from '../../cli/migrate-support.js'
import {jobViews} from '../../service/jobs.js'

export default class Jobs extends RstoreCommand<typeof Jobs> {
  static override description = `List the data-moving jobs of the product (migrate, rebalance, backfill, ...) with their progress.
A job whose process died is shown 'interrupted': run the same command again (or 'rstore migrate --resume')
to finish it.`

  static override examples = ['<%= config.bin %> jobs', '<%= config.bin %> jobs --json']

  async run(): Promise<void> {
    const rows = jobViews(this.cfg)
    this.output(rows, () => listingText(rows))
  }
}
