import {RstoreCommand} from '../../cli/base-command.js'
import {listing, listingText, openExistingCheckpoints} from '../../cli/migrate-support.js'

export default class Jobs extends RstoreCommand<typeof Jobs> {
  static override description = `List the data-moving jobs of the product (migrate, rebalance, backfill, ...) with their progress.
A job whose process died is shown 'interrupted': run the same command again (or 'rstore migrate --resume')
to finish it.`

  static override examples = ['<%= config.bin %> jobs', '<%= config.bin %> jobs --json']

  async run(): Promise<void> {
    const db = openExistingCheckpoints(this.cfg)
    const rows = db ? listing(db) : []
    db?.close()
    this.output(rows, () => listingText(rows))
  }
}
