/** Redis's number parsing and formatting rules, byte for byte. */

export const INT64_MIN = -(2n ** 63n)
export const INT64_MAX = 2n ** 63n - 1n

const INT_RE = /^-?(0|[1-9][0-9]*)$/

/** string2ll: a strict 64-bit integer (no '+', no spaces, no leading zeros, no '-0'). */
export function parseInt64(b: Buffer | string): bigint | null {
  const s = typeof b === 'string' ? b : b.toString('latin1')
  if (s.length === 0 || s.length > 20 || !INT_RE.test(s) || s === '-0') return null
  const v = BigInt(s)
  return v < INT64_MIN || v > INT64_MAX ? null : v
}

const FLOAT_RE = /^[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?)$/
const INF_RE = /^([+-]?)(inf|infinity)$/i

/** strtod/strtold as Redis uses them: no leading space, whole string, no NaN, no overflow. */
export function parseDouble(b: Buffer | string): number | null {
  const s = typeof b === 'string' ? b : b.toString('latin1')
  const inf = INF_RE.exec(s)
  if (inf) return inf[1] === '-' ? -Infinity : Infinity
  if (!FLOAT_RE.test(s)) return null
  const v = Number(s)
  if (!Number.isFinite(v)) return null
  return v
}

/** Redis 7.0's d2string (%.17g, integers without a fraction): ZSCORE, ZRANGE WITHSCORES, ZADD INCR. */
export function formatDouble(x: number): string {
  if (x === Infinity) return 'inf'
  if (x === -Infinity) return '-inf'
  if (x === 0) return Object.is(x, -0) ? '-0' : '0'
  if (x > -4503599627370495 && x < 4503599627370496 && Number.isInteger(x)) return String(x)
  const [mant, expS] = x.toExponential(16).split('e')
  const exp = Number(expS)
  const trim = (s: string) => (s.includes('.') ? s.replace(/0+$/, '').replace(/\.$/, '') : s)
  if (exp < -4 || exp >= 17) return `${trim(mant)}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`
  return trim(x.toFixed(16 - exp))
}

// ---- x87 long double (64-bit significand) arithmetic for INCRBYFLOAT, as Redis computes it.

/** An exact binary value m * 2^e (m signed). */
interface Dyadic {
  m: bigint
  e: number
}

const bitlen = (x: bigint): number => (x === 0n ? 0 : x.toString(2).length)

/** Rounds num/den (num >= 0, den > 0) to 64 significant bits, half to even; value = m * 2^e. */
function roundRational(num: bigint, den: bigint, e0 = 0): Dyadic {
  if (num === 0n) return {m: 0n, e: 0}
  const k = 67 - (bitlen(num) - bitlen(den))
  const n = k >= 0 ? num << BigInt(k) : num
  const d = k >= 0 ? den : den << BigInt(-k)
  let q = n / d
  const sticky = n % d !== 0n
  const drop = bitlen(q) - 64
  let e = e0 - k
  if (drop > 0) {
    const mask = (1n << BigInt(drop)) - 1n
    const rest = q & mask
    const half = 1n << BigInt(drop - 1)
    q >>= BigInt(drop)
    e += drop
    if (rest > half || (rest === half && (sticky || (q & 1n) === 1n))) q += 1n
  }
  return {m: q, e}
}

function parseLongDouble(s: string): Dyadic | null {
  const m = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(s)
  if (!m || (!m[2] && !m[3])) return null
  const digits = BigInt((m[2] || '') + (m[3] || '') || '0')
  const exp = Number(m[4] || 0) - (m[3] || '').length
  if (Math.abs(exp) > 6000) return null
  const r = exp >= 0 ? roundRational(digits * 10n ** BigInt(exp), 1n) : roundRational(digits, 10n ** BigInt(-exp))
  return m[1] === '-' ? {m: -r.m, e: r.e} : r
}

function addLongDouble(a: Dyadic, b: Dyadic): Dyadic {
  const e = Math.min(a.e, b.e)
  const sum = (a.m << BigInt(a.e - e)) + (b.m << BigInt(b.e - e))
  const r = roundRational(sum < 0n ? -sum : sum, 1n, e)
  return sum < 0n ? {m: -r.m, e: r.e} : r
}

/** "%.17Lf" with trailing zeros (and a trailing dot) removed: Redis's human-friendly long double. */
function formatLongDoubleHuman(v: Dyadic): string {
  const neg = v.m < 0n
  const m = neg ? -v.m : v.m
  let q: bigint
  if (v.e >= 0) q = (m << BigInt(v.e)) * 10n ** 17n
  else {
    const num = m * 10n ** 17n
    const den = 1n << BigInt(-v.e)
    q = num / den
    const r = num % den
    if (2n * r > den || (2n * r === den && (q & 1n) === 1n)) q += 1n
  }
  const int = q / 10n ** 17n
  const frac = (q % 10n ** 17n).toString().padStart(17, '0').replace(/0+$/, '')
  const text = frac ? `${int}.${frac}` : `${int}`
  return neg && text !== '0' ? `-${text}` : text
}

/**
 * INCRBYFLOAT: parses both numbers as long doubles, adds, prints as Redis does. Null when a number is
 * not valid; 'inf' when the result is not finite (Redis: "increment would produce NaN or Infinity").
 */
export function incrByFloatText(current: string, increment: string): string | null | 'inf' {
  if (parseDouble(current) === null || parseDouble(increment) === null) return null
  if (INF_RE.test(current) || INF_RE.test(increment)) return 'inf'
  const a = parseLongDouble(current)
  const b = parseLongDouble(increment)
  if (!a || !b) return 'inf'
  const sum = addLongDouble(a, b)
  if (bitlen(sum.m < 0n ? -sum.m : sum.m) + sum.e > 16384) return 'inf'
  return formatLongDoubleHuman(sum)
}
