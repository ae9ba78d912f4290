import {withTopologyStore} from '../../service/context.js'
import {listSlots} from '../../service/slots.js'
import {RstoreCommand} from '../../cli/base-command.js'
import {table} from '../../cli/table.js'

export default class SlotList extends RstoreCommand<typeof SlotList> {
  static override description = 'List the slots compactly: one line per run of consecutive slots with the same state and group.'

  static override examples = ['<%= config.bin %> slot list', '<%= config.bin %> slot list --json']

  public async run(): Promise<void> {
    const res = await withTopologyStore(this.cfg, (store) => listSlots(store))
    this.output(res, () => {
      if (!res.initialized) return `the slots of product '${this.cfg.product}' are not initialized: run 'rstore slot init'`
      const rows = res.ranges.map((r) => [
        r.from === r.to ? `${r.from}` : `${r.from}-${r.to}`,
        r.count,
        `${r.state}${r.pending ? '+pending' : ''}${r.hold ? '+held' : ''}`,
        r.group || undefined,
        r.fromGroup,
      ])
      return `${table(['SLOTS', 'COUNT', 'STATE', 'GROUP', 'FROM'], rows)}\nepoch ${res.epoch}`
    })
  }
}
