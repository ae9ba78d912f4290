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

/**
 * INCRBYFLOAT's reply: Redis adds in long double and prints "%.17Lf" without trailing zeros. With
 * doubles we round to 15 significant digits, which gives Redis's text for ordinary values (0.1+0.2 -> 0.3).
 */
export function formatLongDouble(x: number): string {
  const n = Number(x.toPrecision(15))
  if (Number.isInteger(n)) return BigInt(n).toString()
  let s = String(n)
  if (s.includes('e')) s = n.toFixed(17)
  return s.includes('.') ? s.replace(/0+$/, '').replace(/\.$/, '') : s
}
