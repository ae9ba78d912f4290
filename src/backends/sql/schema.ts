import {ValidationError} from '../../errors.js'
import type {SqlDriver} from '../sql-driver.js'
import type {StoreUrl} from '../url.js'

/** Checks every existing table has the expected columns, then creates the missing ones. */
export async function ensureSchema(db: SqlDriver, url: StoreUrl): Promise<void> {
  const specs = db.specs(url.prefix)
  const check = async () => {
    const found = await db.describe(specs.map((s) => s.name))
    const missing: string[] = []
    for (const spec of specs) {
      const cols = found.get(spec.name)
      if (!cols) {
        missing.push(spec.name)
        continue
      }
      const want = Object.entries(spec.columns)
      const ok = cols.size === want.length && want.every(([c, types]) => types.includes(cols.get(c) ?? ''))
      if (!ok) {
        const has = [...cols].map(([c, d]) => `${c} ${d}`).join(', ')
        const exp = want.map(([c, d]) => `${c} ${d[0]}`).join(', ')
        throw new ValidationError(
          `${url.display}: table ${spec.name} has the wrong shape (${has}); expected (${exp}): drop or rename it, or use another table prefix (?prefix=)`,
        )
      }
    }
    return missing
  }
  if ((await check()).length === 0) return
  // Another process may be creating them too: check again under the lock.
  await db.withSchemaLock(async (c) => {
    if ((await check()).length === 0) return
    for (const stmt of db.ddl(url.prefix)) await c.query(stmt)
  })
}
