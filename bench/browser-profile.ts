// CPU profiles of both sides of bench:browser (--cpu-profile DIR): V8's sampling profiler in the
// page's engine worker, through the Chrome DevTools Protocol, and in this Node process through
// node:inspector, over the same rounds. Both write DevTools' .cpuprofile JSON.
import { Session } from 'node:inspector';
import type { Browser, CDPSession } from 'playwright-core';

/** Start and stop one sampling profile; stop resolves to the .cpuprofile JSON. */
export interface Profiler { start(): Promise<void>; stop(): Promise<object> }

/** Sampling interval, us: fine enough to split a ~2 ms decode step among its kernels. */
const INTERVAL_US = 100;

/**
 * The profiler of the dedicated worker whose script URL ends with `urlEnd`. Dedicated workers have
 * no page-level CDP session in playwright, so this attaches to the worker target from the browser
 * session and talks to it through Target.sendMessageToTarget (unflattened).
 */
export async function workerProfiler(browser: Browser, urlEnd: string): Promise<Profiler> {
  const cdp: CDPSession = await browser.newBrowserCDPSession();
  const { targetInfos } = await cdp.send('Target.getTargets');
  const target = targetInfos.find((t) => t.type === 'worker' && t.url.endsWith(urlEnd));
  if (!target) throw new Error(`no worker target with a URL ending in ${urlEnd}`);
  const { sessionId } = await cdp.send('Target.attachToTarget', { targetId: target.targetId, flatten: false });
  let next = 1;
  const waiting = new Map<number, (r: { result?: unknown; error?: { message: string } }) => void>();
  cdp.on('Target.receivedMessageFromTarget', (e) => {
    if (e.sessionId !== sessionId) return;
    const m = JSON.parse(e.message) as { id?: number; result?: unknown; error?: { message: string } };
    if (m.id !== undefined) waiting.get(m.id)?.(m);
  });
  const send = async (method: string, params: object = {}): Promise<unknown> => {
    const id = next++;
    const reply = new Promise<{ result?: unknown; error?: { message: string } }>((resolve) => waiting.set(id, resolve));
    await cdp.send('Target.sendMessageToTarget', { sessionId, message: JSON.stringify({ id, method, params }) });
    const r = await reply;
    waiting.delete(id);
    if (r.error) throw new Error(`${method}: ${r.error.message}`);
    return r.result;
  };
  await send('Profiler.enable');
  await send('Profiler.setSamplingInterval', { interval: INTERVAL_US });
  return {
    start: async () => { await send('Profiler.start'); },
    stop: async () => ((await send('Profiler.stop')) as { profile: object }).profile,
  };
}

/** The profiler of this Node process's main thread. */
export function nodeProfiler(): Profiler {
  const s = new Session();
  s.connect();
  const post = (method: string, params: object = {}): Promise<unknown> =>
    new Promise((resolve, reject) => s.post(method, params, (err, r) => (err ? reject(err) : resolve(r))));
  return {
    start: async () => { await post('Profiler.enable'); await post('Profiler.setSamplingInterval', { interval: INTERVAL_US }); await post('Profiler.start'); },
    stop: async () => ((await post('Profiler.stop')) as { profile: object }).profile,
  };
}
