/**
 * How rstore shows a key to an operator (logs, errors, verify and backfill reports): as is when it is
 * printable UTF-8, else `0x` and its bytes in hex, so that any key can be told apart and typed back
 * (redis-cli takes the hex form through `--eval` or a script; docs/architecture.md, "Errors").
 */
export function showKey(key: Buffer, max = 0): string {
  const s = key.toString('utf8')
  const text = Buffer.from(s, 'utf8').equals(key) && !/[\x00-\x1f\x7f]/.test(s) ? s : `0x${key.toString('hex')}`
  return max > 3 && text.length > max ? `${text.slice(0, max - 3)}...` : text
}
