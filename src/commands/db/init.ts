import {Args} from '@oclif/core'
import {parseStoreUrl, SqlStore} from '../../backends/index.js'
import {RstoreCommand} from '../../cli/base-command.js'
import {ValidationError} from '../../errors.js'

export default class DbInit extends RstoreCommand<typeof DbInit> {
  static override description = `Create the key store tables in a MySQL/MariaDB or PostgreSQL database.

Tables <prefix>keys (key, type, expire_at), <prefix>strings, <prefix>hash, <prefix>set, <prefix>zset (score index) and <prefix>list; prefix rstore_ unless the URL says ?prefix=. Existing tables are checked: one of the wrong shape is an error. Stores also create missing tables on first use.`

  static override examples = ['<%= config.bin %> db init mysql://rstore:secret@127.0.0.1:3306/rstore', '<%= config.bin %> db init postgres://rstore:secret@127.0.0.1:5432/rstore?prefix=cold_']

  static override args = {
    url: Args.string({description: 'mysql://user:pass@host:port/db or postgres://user:pass@host:port/db', required: true}),
  }

  async run(): Promise<void> {
    const url = parseStoreUrl(this.args.url)
    if (url.kind === 'redis') throw new ValidationError(`db init creates SQL tables: ${url.display} is a Redis URL`)
    const store = await SqlStore.open(url, {reapIntervalMs: 0})
    await store.close()
    const tables = ['keys', 'strings', 'hash', 'set', 'zset', 'list'].map((t) => url.prefix + t)
    this.output({url: url.display, tables}, () => `tables ready in ${url.display}: ${tables.join(', ')}`)
  }
}
