/**
 * A small RESP2 value type: what a key store answers to a command. The proxy encodes it as is.
 * Integers are numbers when they fit in a double exactly, bigints otherwise (Redis integers are 64-bit).
 */
export type Reply =
  | {type: 'simple'; value: string}
  | {type: 'error'; value: string}
  | {type: 'integer'; value: number | bigint}
  | {type: 'bulk'; value: Buffer | null}
  | {type: 'array'; value: Reply[] | null}

export const OK: Reply = Object.freeze({type: 'simple', value: 'OK'}) as Reply
export const NIL: Reply = Object.freeze({type: 'bulk', value: null}) as Reply
export const NIL_ARRAY: Reply = Object.freeze({type: 'array', value: null}) as Reply

export const simple = (value: string): Reply => ({type: 'simple', value})
export const error = (value: string): Reply => ({type: 'error', value})
export const bulk = (value: Buffer | string | null): Reply => ({type: 'bulk', value: typeof value === 'string' ? Buffer.from(value) : value})
export const array = (value: Reply[] | null): Reply => ({type: 'array', value})
export const bulks = (values: (Buffer | string | null)[]): Reply => array(values.map(bulk))

export function integer(value: number | bigint): Reply {
  if (typeof value === 'bigint' && value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)) {
    return {type: 'integer', value: Number(value)}
  }
  return {type: 'integer', value}
}

export const WRONGTYPE = 'WRONGTYPE Operation against a key holding the wrong kind of value'

/** Raised inside a command to answer with a RESP error (rolled back if in a transaction). */
export class CommandError extends Error {
  constructor(readonly reply: string) {
    super(reply)
    this.name = 'CommandError'
  }
}

/** Encodes a reply in RESP2 (for a proxy, and to compare replies byte for byte in tests). */
export function encodeReply(r: Reply): Buffer {
  const parts: Buffer[] = []
  const walk = (x: Reply): void => {
    switch (x.type) {
      case 'simple':
        parts.push(Buffer.from(`+${x.value}\r\n`))
        break
      case 'error':
        parts.push(Buffer.from(`-${x.value}\r\n`))
        break
      case 'integer':
        parts.push(Buffer.from(`:${x.value}\r\n`))
        break
      case 'bulk':
        if (x.value === null) parts.push(Buffer.from('$-1\r\n'))
        else parts.push(Buffer.from(`$${x.value.length}\r\n`), x.value, Buffer.from('\r\n'))
        break
      case 'array':
        if (x.value === null) parts.push(Buffer.from('*-1\r\n'))
        else {
          parts.push(Buffer.from(`*${x.value.length}\r\n`))
          x.value.forEach(walk)
        }
    }
  }
  walk(r)
  return Buffer.concat(parts)
}

/** A readable rendering for messages and test diffs. */
export function formatReply(r: Reply): string {
  switch (r.type) {
    case 'simple':
      return `+${r.value}`
    case 'error':
      return `-${r.value}`
    case 'integer':
      return `:${r.value}`
    case 'bulk':
      return r.value === null ? '(nil)' : JSON.stringify(r.value.toString('latin1'))
    case 'array':
      return r.value === null ? '(nil array)' : `[${r.value.map(formatReply).join(', ')}]`
  }
}
