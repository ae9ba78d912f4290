import type {RstoreConfig} from '../config.js'
import {openCoordinator, type OpenOptions} from '../coord/index.js'
import {TopologyStore} from '../coord/topology-store.js'
import {RstoreError, UnreachableError} from '../errors.js'

/**
 * Opens the configured coordinator, runs fn with the product's TopologyStore and always closes the
 * coordinator (so the CLI process can exit). A coordinator that cannot be opened is an UnreachableError.
 */
export async function withTopologyStore<T>(
  cfg: RstoreConfig,
  fn: (store: TopologyStore) => Promise<T>,
  open: OpenOptions = {},
): Promise<T> {
  let coord
  try {
    coord = await openCoordinator(cfg, open)
  } catch (err) {
    if (err instanceof RstoreError) throw err
    throw new UnreachableError(`cannot open the ${cfg.coordinator} coordinator at ${cfg.coordinatorAddr}: ${(err as Error).message.split('\n')[0]}`)
  }
  try {
    return await fn(new TopologyStore(coord, cfg.product))
  } finally {
    await coord.close().catch(() => {})
  }
}
