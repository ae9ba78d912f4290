import {readFileSync} from 'node:fs'
import {ValidationError} from '../errors.js'

/** Reads `--tls-cert` / `--tls-key` (PEM); both or neither. */
export function readTlsFiles(cert: string | undefined, key: string | undefined): {cert: Buffer; key: Buffer} | undefined {
  if (!cert && !key) return undefined
  if (!cert || !key) throw new ValidationError('--tls-cert and --tls-key go together: give both PEM files')
  const read = (path: string, what: string) => {
    try {
      return readFileSync(path)
    } catch (err) {
      throw new ValidationError(`cannot read ${what} '${path}': ${(err as Error).message}`)
    }
  }
  return {cert: read(cert, '--tls-cert'), key: read(key, '--tls-key')}
}
