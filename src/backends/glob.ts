/** Redis's glob matching (stringmatchlen) on bytes: `*`, `?`, `[abc]`, `[^a-z]`, `\x`. */
export function globMatch(pattern: Buffer, str: Buffer, nocase = false): boolean {
  return match(pattern, 0, str, 0, nocase)
}

const lower = (c: number) => (c >= 65 && c <= 90 ? c + 32 : c)

function match(p: Buffer, pi: number, s: Buffer, si: number, nocase: boolean): boolean {
  while (pi < p.length && si <= s.length) {
    const c = p[pi]
    if (c === 0x2a /* * */) {
      while (pi + 1 < p.length && p[pi + 1] === 0x2a) pi++
      if (pi + 1 === p.length) return true
      for (let k = si; k <= s.length; k++) if (match(p, pi + 1, s, k, nocase)) return true
      return false
    }
    if (si >= s.length) return false
    if (c === 0x3f /* ? */) {
      si++
      pi++
      continue
    }
    if (c === 0x5b /* [ */) {
      pi++
      let not = false
      if (p[pi] === 0x5e /* ^ */) {
        not = true
        pi++
      }
      let matched = false
      for (;;) {
        if (pi >= p.length) {
          pi--
          break
        }
        if (p[pi] === 0x5c && pi + 1 < p.length) {
          pi++
          if (p[pi] === s[si]) matched = true
        } else if (p[pi] === 0x5d /* ] */) {
          break
        } else if (pi + 2 < p.length && p[pi + 1] === 0x2d /* - */) {
          let start = p[pi]
          let end = p[pi + 2]
          let ch = s[si]
          if (start > end) [start, end] = [end, start]
          if (nocase) {
            start = lower(start)
            end = lower(end)
            ch = lower(ch)
          }
          pi += 2
          if (ch >= start && ch <= end) matched = true
        } else if (nocase ? lower(p[pi]) === lower(s[si]) : p[pi] === s[si]) {
          matched = true
        }
        pi++
      }
      if (not) matched = !matched
      if (!matched) return false
      si++
      pi++
      continue
    }
    let lit = c
    if (c === 0x5c /* \ */ && pi + 1 < p.length) {
      pi++
      lit = p[pi]
    }
    if (nocase ? lower(lit) !== lower(s[si]) : lit !== s[si]) return false
    si++
    pi++
  }
  while (pi < p.length && p[pi] === 0x2a) pi++
  return pi === p.length && si === s.length
}

/** The literal prefix of a glob (bytes before the first special character): lets a store seek. */
export function globPrefix(pattern: Buffer): Buffer {
  let i = 0
  while (i < pattern.length && ![0x2a, 0x3f, 0x5b, 0x5c].includes(pattern[i])) i++
  return pattern.subarray(0, i)
}
