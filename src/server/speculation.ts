import type { SpeculationStats } from '../generate/stepper.js';
import { Counter, type Registry } from './metrics.js';

/** Speculative decoding's counters on /metrics; returns what to call per finished turn. */
export function speculationMetrics(reg: Registry): (sp: SpeculationStats | undefined) => void {
  const forwards = reg.add(new Counter('streamlm_decode_forwards_total', 'Backbone forwards while decoding (plain steps and draft verifications).'));
  const fed = reg.add(new Counter('streamlm_decode_fed_tokens_total', 'Tokens fed while decoding; divided by forwards, the tokens per forward.'));
  const proposed = reg.add(new Counter('streamlm_draft_proposed_total', 'Drafted tokens checked, by draft position (0 = first after the sampled token).'));
  const accepted = reg.add(new Counter('streamlm_draft_accepted_total', 'Drafted tokens the backbone accepted, by draft position.'));
  return (sp) => {
    if (!sp) return;
    forwards.inc(sp.forwards);
    fed.inc(Math.round(sp.tokensPerForward * sp.forwards));
    sp.proposed.forEach((n, i) => { proposed.inc(n, { position: String(i) }); accepted.inc(sp.accepted[i], { position: String(i) }); });
  };
}

/** The `usage.speculation` extension field (snake_case, as the rest of the OpenAI-shaped body). */
export function speculationUsage(sp: SpeculationStats): { forwards: number; tokens_per_forward: number; acceptance: number[] } {
  return { forwards: sp.forwards, tokens_per_forward: sp.tokensPerForward, acceptance: sp.proposed.map((p, i) => (p ? sp.accepted[i] / p : 0)) };
}
