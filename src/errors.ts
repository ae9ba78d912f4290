/**
 * Typed errors. Every error the user can cause carries a code and a message that says
 * what was wrong and how to fix it; the CLI prints the message as one line and exits non-zero.
 */
export class RstoreError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message)
    this.name = 'RstoreError'
  }
}

/** Input that is malformed or out of range (bad slot, bad address, reversed range). */
export class ValidationError extends RstoreError {
  constructor(message: string) {
    super('EINVAL', message)
    this.name = 'ValidationError'
  }
}

/** Something named does not exist (a group, a server, a proxy, a job). */
export class NotFoundError extends RstoreError {
  constructor(message: string) {
    super('ENOTFOUND', message)
    this.name = 'NotFoundError'
  }
}

/** The request conflicts with the current state (migrating slot, second master, job running). */
export class ConflictError extends RstoreError {
  constructor(message: string) {
    super('ECONFLICT', message)
    this.name = 'ConflictError'
  }
}

/** A server or the coordinator could not be reached. */
export class UnreachableError extends RstoreError {
  constructor(message: string) {
    super('EUNREACHABLE', message)
    this.name = 'UnreachableError'
  }
}
