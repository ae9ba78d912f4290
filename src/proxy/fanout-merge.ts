/** How the fan-out commands merge the groups' replies into one (docs/proxy-fanout.md). */
import {encodeError, encodeValue, type RespValue} from '../resp/resp.js'

/** One reply every group must have given alike (SCRIPT LOAD's SHA1); else an error. */
export function answerMerged(raws: Buffer[], what: string): Buffer {
  const first = raws[0]
  if (!first) return encodeError(`ERR ${what}: no server group`)
  const i = raws.findIndex((r) => !r.equals(first))
  return i < 0 ? first : encodeError(`ERR ${what}: the groups answered differently`)
}

/** CONFIG GET: every parameter any master names, with the first master's value. */
export function configGet(values: RespValue[]): Buffer {
  const merged = new Map<string, RespValue>()
  for (const v of values) {
    const list = v as RespValue[]
    for (let i = 0; i + 1 < list.length; i += 2) {
      const name = String(list[i])
      if (!merged.has(name)) merged.set(name, list[i + 1]!)
    }
  }
  const out: RespValue[] = []
  for (const [name, value] of merged) out.push(name, value)
  return encodeValue(out)
}

/** SCRIPT EXISTS: 1 for a script only if every master has it (EVALSHA works on any group). */
export function scriptExists(values: RespValue[]): Buffer {
  const lists = values as number[][]
  const n = lists[0]?.length ?? 0
  const out: number[] = []
  for (let i = 0; i < n; i++) out.push(lists.every((l) => l[i] === 1) ? 1 : 0)
  return encodeValue(out)
}
