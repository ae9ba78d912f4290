import {bulk, integer, OK, simple} from '../reply.js'
import type {CommandTable} from './common.js'
import {hashCommands} from './hashes.js'
import {keyCommands} from './keys.js'
import {listCommands} from './lists.js'
import {setCommands} from './sets.js'
import type {SqlStore} from './store.js'
import {stringCommands} from './strings.js'
import {zsetCommands} from './zsets.js'

/**
 * Every command the SQL store runs, by lower-case name. A new command is one handler in the module
 * of its Redis type and one row in that module's table.
 */
export function commandTable(s: SqlStore): CommandTable {
  return {
    ping: [-1, async (a) => (a.length ? bulk(a[0]) : simple('PONG'))],
    dbsize: [1, async () => integer(await s.dbsize())],
    flushdb: [-1, async () => {
      await s.tx(async (c) => {
        for (const t of [...s.t.data, s.t.keys]) await c.query(`DELETE FROM ${t}`)
      })
      return OK
    }],
    ...stringCommands(s),
    ...hashCommands(s),
    ...setCommands(s),
    ...zsetCommands(s),
    ...listCommands(s),
    ...keyCommands(s),
  }
}
