import Migrate from '../migrate.js'

/** Reborn's spelling: `rstore slot migrate <from> <to> <group> [--delay=ms]`. */
export default class SlotMigrate extends Migrate {
  static override description = `${Migrate.description}\n\nSame as 'rstore migrate' (Reborn's spelling).`
  static override examples = ['<%= config.bin %> slot migrate 0 511 2 --delay=10', '<%= config.bin %> slot migrate --resume']
}
