/** Embedding a node in a Node.js program: `startNode(options)`. */
export { startNode, type SwitchboardNode } from './node.js';
export type { CommandOptions, ServerCommands } from './core/commands.js';
export {
  DEFAULT_LIMITS,
  DEFAULT_NAMESPACE,
  DEFAULT_PERSONAL_NAMESPACE,
  withDefaults,
  type Limits,
  type NamespaceOptions,
  type NodeOptions,
  type NodeOptionsInput,
} from './options.js';
