import type {RstoreConfig} from '../config.js'
import type {Coordinator} from './types.js'

export type {Compare, Coordinator, KeyValue, Lease, Op, TxnResult, WatchEvent, Watcher} from './types.js'
export {createOnly} from './types.js'
export {CompactedError, CoordinatorClosedError, LeaseNotFoundError} from './keys.js'

export interface OpenOptions {
  /**
   * Embedded only: create the SQLite file when it is missing. Default false: only `slot init` creates
   * it, every other command refuses a missing file (a deleted file or a wrong path would otherwise
   * start a second, empty coordinator beside the live one).
   */
  create?: boolean
}

/** Opens the coordinator named by the config (embedded SQLite file by default, or etcd). */
export async function openCoordinator(cfg: RstoreConfig, opts: OpenOptions = {}): Promise<Coordinator> {
  if (cfg.coordinator === 'etcd') {
    const {EtcdCoordinator} = await import('./etcd.js')
    return EtcdCoordinator.connect(
      cfg.coordinatorAddr
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
    )
  }
  const {EmbeddedCoordinator} = await import('./embedded.js')
  return EmbeddedCoordinator.open(cfg.coordinatorAddr, {create: opts.create ?? false})
}
