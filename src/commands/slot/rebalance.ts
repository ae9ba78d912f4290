import Rebalance from '../rebalance.js'

/** Reborn's spelling: `rstore slot rebalance`. */
export default class SlotRebalance extends Rebalance {
  static override description = `${Rebalance.description}\n\nSame as 'rstore rebalance' (Reborn's spelling).`
  static override examples = ['<%= config.bin %> slot rebalance --dry-run', '<%= config.bin %> slot rebalance --by slots']
}
