// Cross-origin access for browser apps on other origins (CORS). Off unless origins are configured:
// the server holds conversations by session id, and with `*` any page the user visits could call
// it. `*` answers every origin; a list answers only those, echoing the request's Origin.
import type { IncomingMessage, ServerResponse } from 'node:http';

const METHODS = 'GET, POST, DELETE, OPTIONS';
/** Response headers a cross-origin page may read: the session ones. */
const EXPOSED = 'X-Session-Id, X-Session-Status, X-Session-Dropped, X-Session-Turns';

export interface CorsPolicy {
  /** Adds Access-Control-Allow-Origin (and Expose-Headers) to a response when the origin is allowed. */
  headers(req: IncomingMessage, res: ServerResponse): void;
  /** Answers an OPTIONS request: 204, with the preflight headers when the origin is allowed. */
  preflight(req: IncomingMessage, res: ServerResponse): void;
}

export function corsPolicy(config: string | undefined): CorsPolicy {
  const list = config === undefined ? [] : config.split(',').map((o) => o.trim().replace(/\/+$/, '')).filter(Boolean);
  const any = list.includes('*');
  const allowed = (req: IncomingMessage): string | null => {
    const origin = req.headers.origin;
    if (any) return '*';
    return typeof origin === 'string' && list.includes(origin) ? origin : null;
  };
  return {
    headers(req, res) {
      const o = allowed(req);
      if (o === null) return;
      res.setHeader('Access-Control-Allow-Origin', o);
      res.setHeader('Access-Control-Expose-Headers', EXPOSED);
      if (o !== '*') res.setHeader('Vary', 'Origin');
    },
    preflight(req, res) {
      const h: Record<string, string> = { Allow: METHODS };
      if (allowed(req) !== null) {
        h['Access-Control-Allow-Methods'] = METHODS;
        // Echo what the page asks for: SDKs add their own headers (OpenAI's x-stainless-*).
        h['Access-Control-Allow-Headers'] = String(req.headers['access-control-request-headers'] ?? 'Content-Type, Authorization, X-Session-Id');
        h['Access-Control-Max-Age'] = '600';
      }
      res.writeHead(204, h).end();
    },
  };
}
