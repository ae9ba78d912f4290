/**
 * INFO over the groups (docs/proxy-fanout.md, "INFO"): the masters' sections and field names, their
 * values combined into one, the proxy's own fields laid over them, plus an `# Rstore` section.
 */

/** Sections in order; each maps field -> value text, in order. */
export type InfoSections = Map<string, Map<string, string>>

export function parseInfo(text: string): InfoSections {
  const out: InfoSections = new Map()
  let cur: Map<string, string> | null = null
  for (const line of text.split(/\r?\n/)) {
    if (line.startsWith('# ')) {
      const name = line.slice(2).trim()
      cur = out.get(name) ?? new Map()
      out.set(name, cur)
      continue
    }
    const i = line.indexOf(':')
    if (i <= 0 || !cur) continue
    cur.set(line.slice(0, i), line.slice(i + 1))
  }
  return out
}

export function renderInfo(sections: InfoSections): string {
  const parts: string[] = []
  for (const [name, fields] of sections) {
    parts.push(`# ${name}`, ...[...fields].map(([k, v]) => `${k}:${v}`), '')
  }
  return parts.join('\r\n')
}

/** Fields that describe one server or its settings: the first group's value. */
const FIRST = /^(redis_|os$|arch_bits|process_|run_id|tcp_port|server_time_usec|executable|config_file|io_threads|hz$|configured_hz|lru_clock|maxclients|maxmemory|mem_allocator|gcc_version|multiplexing_api|atomicvar_api|monotonic_clock|listener)/
/** Times since an event, peaks and ratios: the largest. */
const MAX = /uptime|_peak|ratio|_perc|_lag|_offset|^rdb_last_bgsave_time_sec|^aof_last_rewrite_time_sec/
/** The time of the last save: the oldest (as LASTSAVE). */
const MIN = /^rdb_last_save_time$/
const NUMBER = /^-?\d+(\.\d+)?$/

function combine(field: string, values: string[]): string {
  if (FIRST.test(field) || !values.every((v) => NUMBER.test(v))) {
    return values.every((v) => /^(\w+=[^,]*,?)+$/.test(v) && v.includes('=')) && !FIRST.test(field) ? combinePairs(values) : values[0]!
  }
  const nums = values.map(Number)
  if (MIN.test(field)) return String(Math.min(...nums))
  if (MAX.test(field)) return String(Math.max(...nums))
  const sum = nums.reduce((a, b) => a + b, 0)
  return values.some((v) => v.includes('.')) ? sum.toFixed(6) : String(sum)
}

/** `keys=1,expires=0,avg_ttl=0` (keyspace), `calls=..,usec=..` (commandstats): summed per part. */
function combinePairs(values: string[]): string {
  const parts = new Map<string, number[]>()
  for (const v of values) {
    for (const kv of v.split(',')) {
      const [k, x] = kv.split('=') as [string, string]
      if (!parts.has(k)) parts.set(k, [])
      parts.get(k)!.push(Number(x))
    }
  }
  const out = new Map<string, string>()
  for (const [k, xs] of parts) {
    if (xs.some((x) => Number.isNaN(x))) out.set(k, String(values[0]!.split(',').find((kv) => kv.startsWith(`${k}=`))?.slice(k.length + 1) ?? ''))
    else if (/avg|^p\d/.test(k)) out.set(k, String(Math.max(...xs)))
    else out.set(k, String(xs.reduce((a, b) => a + b, 0)))
  }
  const calls = Number(out.get('calls'))
  if (out.has('usec_per_call') && calls > 0) out.set('usec_per_call', (Number(out.get('usec')) / calls).toFixed(2))
  return [...out].map(([k, v]) => `${k}=${v}`).join(',')
}

const OWN_SECTIONS = new Set(['Server', 'Clients', 'Stats'])

/** The masters' INFO texts merged; the proxy's own sections laid over those the client asked for. */
export function mergeInfo(masters: string[], proxy: string, rstore: [string, string][], withRstore: boolean): string {
  const parsed = masters.map(parseInfo)
  const merged: InfoSections = new Map()
  for (const p of parsed) {
    for (const [name, fields] of p) {
      const into = merged.get(name) ?? new Map<string, string>()
      merged.set(name, into)
      for (const field of fields.keys()) {
        if (into.has(field)) continue
        const values = parsed.map((q) => q.get(name)?.get(field)).filter((v): v is string => v !== undefined)
        into.set(field, combine(field, values))
      }
    }
  }
  const own = parseInfo(proxy)
  const askedAll = masters.length === 0
  for (const [name, fields] of own) {
    // The proxy is the server the client talks to (its clients, its commands); memory and the
    // rest are the groups'.
    if (!OWN_SECTIONS.has(name) && !askedAll) continue
    const into = merged.get(name) ?? (askedAll ? new Map<string, string>() : null)
    if (!into) continue
    merged.set(name, into)
    for (const [k, v] of fields) into.set(k, v)
  }
  if (withRstore) merged.set('Rstore', new Map(rstore))
  return renderInfo(merged)
}
