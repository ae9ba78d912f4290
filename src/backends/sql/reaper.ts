import {placeholders, type SqlDriver} from '../sql-driver.js'
import {num, type Tables} from './common.js'

/** Deletes expired keys in the background (reads already hide them; this frees their rows). */
export class Reaper {
  private timer?: NodeJS.Timeout
  private running = false

  constructor(
    private readonly db: SqlDriver,
    private readonly t: Tables,
  ) {}

  /** Reaps every `everyMs`; the timer does not keep the process alive. */
  start(everyMs: number): void {
    this.timer = setInterval(() => void this.reap().catch(() => {}), everyMs)
    this.timer.unref()
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer)
  }

  /** Deletes up to `limit` expired keys (rows locked by live commands are skipped); returns how many. */
  async reap(limit = 500): Promise<number> {
    if (this.running) return 0
    this.running = true
    try {
      const now = Date.now()
      return await this.db.transaction(async (c) => {
        const {rows} = await c.query(`SELECT k, type FROM ${this.t.keys} WHERE expire_at <= ? ORDER BY expire_at LIMIT ${limit} FOR UPDATE SKIP LOCKED`, [now])
        if (!rows.length) return 0
        for (let type = 0; type < 5; type++) {
          const ks = rows.filter((r) => num(r.type) === type).map((r) => r.k as Buffer)
          if (ks.length) await c.query(`DELETE FROM ${this.t.data[type]} WHERE k IN (${placeholders(ks.length)})`, ks)
        }
        await c.query(`DELETE FROM ${this.t.keys} WHERE k IN (${placeholders(rows.length)})`, rows.map((r) => r.k))
        return rows.length
      })
    } finally {
      this.running = false
    }
  }
}
