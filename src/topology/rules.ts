/**
 * rstore's routing to SQL as pure data (docs/architecture.md, "SQL routing"): the model (rules-model),
 * the normalization of input into it (rules-normalize), and the compiled, validated config that routes
 * keys (rules-compile). Importers take everything from here.
 */
export * from './rules-model.js'
export * from './rules-normalize.js'
export * from './rules-compile.js'
