/**
 * Redirects (`--hashring-redirect`): a session whose user another node
 * owns is closed with 4102 and the owner's URL, so that the client
 * reconnects there. Only strategies that assign users to nodes name an
 * owner (hash ring); with the others nobody is redirected.
 */
import { CloseCode } from '../../protocol/index.js';
import type { Metrics } from '../metrics.js';
import type { RoutingStrategy } from '../routing/strategies.js';
import type { Session } from './session.js';

export class Redirects {
  constructor(
    private readonly nodeId: string,
    private readonly routing: RoutingStrategy,
    /** `--hashring-redirect`: off, nobody is redirected. */
    readonly enabled: boolean,
    /** The public WebSocket URL of a live node. */
    private readonly urlOf: (node: string) => string | undefined,
    private readonly metrics: Metrics,
  ) {}

  /** Close `session` if another node owns its user and has a known URL; true when it was closed. */
  apply(session: Session): boolean {
    if (!this.enabled) return false;
    const owner = this.routing.owner(session.user);
    if (owner === undefined || owner === this.nodeId) return false;
    const url = this.urlOf(owner);
    if (url === undefined) return false;
    this.metrics.moved.inc();
    session.disconnect(CloseCode.Moved, `moved: user ${session.user} belongs to node ${owner}`, true, url);
    return true;
  }
}
