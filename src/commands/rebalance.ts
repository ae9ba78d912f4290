import {Flags} from '@oclif/core'
import {withTopologyStore} from '../service/context.js'
import {RstoreCommand} from '../cli/base-command.js'
import {moveFlags, moveOptions, openExistingCheckpoints, planText, runJobCommand, summaryText} from '../cli/migrate-support.js'
import {MigrationStore} from '../migrate/migration-store.js'
import {planRebalanceNow} from '../migrate/plan.js'
import {parseRebalanceBy} from '../migrate/rebalance-plan.js'

export default class Rebalance extends RstoreCommand<typeof Rebalance> {
  static override description = `Spread the slots over the groups and move them there, as one checkpointed job.
--by memory (Reborn's rule): a group's share of the 1024 slots is proportional to its master's
maxmemory; it needs maxmemory on every master, every slot online and a master in every group.
--by slots: equal shares. The plan moves the fewest slots; --dry-run only prints it.`

  static override examples = [
    '<%= config.bin %> rebalance --dry-run',
    '<%= config.bin %> rebalance --by slots',
    '<%= config.bin %> rebalance --by memory --delay=1',
  ]

  static override flags = {
    by: Flags.string({description: 'memory (share by maxmemory) or slots (equal shares)', default: 'memory', options: ['memory', 'slots']}),
    'dry-run': Flags.boolean({description: 'print the plan and change nothing', default: false}),
    ...moveFlags,
  }

  async run(): Promise<void> {
    const by = parseRebalanceBy(this.flags.by)
    // An unfinished rebalance with the same arguments is resumed with its stored plan.
    const db = openExistingCheckpoints(this.cfg)
    const unfinished = db ? new MigrationStore(db).unfinished() : []
    db?.close()
    const same = unfinished.find((j) => j.kind === 'rebalance' && j.args.by === by)
    if (!same || this.flags['dry-run']) {
      const {plan, epoch} = await withTopologyStore(this.cfg, (store) => planRebalanceNow(store, by))
      if (this.flags['dry-run']) {
        this.output({dryRun: true, epoch, ...plan, unfinishedJob: unfinished[0]?.id}, () => planText(plan) + (unfinished[0] ? `\n\nnote: job ${unfinished[0].id} is unfinished; it must finish before a new plan can run` : ''))
        return
      }
      if (!this.flags.json) this.logToStderr(planText(plan))
      if (!plan.moves.length) {
        this.output({state: 'nothing-to-do', plan}, () => '')
        return
      }
    }
    const summary = await runJobCommand(this.cfg, {kind: 'rebalance', by}, moveOptions(this.flags), {json: this.flags.json, write: (l) => this.logToStderr(l)})
    this.output(summary, () => summaryText(summary))
  }
}
