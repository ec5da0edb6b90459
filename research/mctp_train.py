"""Train MCTP heads (issue 15) for a shipped novels model: one small transformer module, applied K
times with shared weights and chained on its own output hidden state and the token chosen before it
(VITA-Audio's MCTP modules, EAGLE's draft head), predicting through the backbone's own final norm
and tied output head. The backbone is frozen; the targets are its own greedy (argmax) tokens
(self-distillation: what speculative decoding accepts under greedy is exactly the backbone's argmax).

Data (tokenized on the CPU machine, uint16 files, see docs/training.md): train.bin (chunks of the
train split's books), eval.bin (the long-eval books, held out). Each training sequence is a
`--prompt` token passage of train.bin followed by `--gen` tokens the backbone generated greedily
from it, the situation the drafter meets at decode time.

Module (all shapes in the `mctp` config entry; the engine's src/models/mctp.ts runs the same math):
  g   = hidden input: the backbone's final hidden state after its final norm (step 1), else
        final_norm(u) of the previous step
  e   = rmsnorm(embed[token], e_norm)           token = the token chosen at the previous step
  x   = fc_e(e) + fc_h(g) + step_bias[i]        (fc: 2d -> d, split in two halves)
  x  += o(attention(rope(q(n1)), rope(k(n1)), v(n1)))   n1 = rmsnorm(x, attn_norm)
  x  += down(silu(gate(n2)) * up(n2))           n2 = rmsnorm(x, ffn_norm)
  u   = x;  logits = lm_head(final_norm(u))     (the backbone's norm and tied head)
Attention: the module keeps its own K/V of the real positions (each computed by step 1 from the
backbone's hidden state there and the next real token). Step i of a draft that starts at position t
sits at position t+i-1 and sees the real entries s with t+i-1-window < s <= t plus the entries of
steps 2..i of its own chain (EAGLE's draft tree, one branch). RoPE at those positions.

Progressive schedule (VITA-Audio): step 1 alone first, then steps 1..2, ... up to K.

  python3 research/mctp_train.py --model models/novels-8m --data DIR --out OUT [--seconds 300]
  python3 research/mctp_train.py --selftest     # CPU, a random tiny backbone: shapes, masks, export
"""
import argparse, json, math, os, sys, time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def rmsnorm(x, w, eps):
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * w


def rope_cos_sin(pos, dim, theta, dtype):
    inv = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float64, device=pos.device) / dim))
    ang = pos.to(torch.float64)[..., None] * inv
    emb = torch.cat([ang, ang], -1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate(x, cos, sin):
    # x [..., L, dh]; cos/sin broadcastable; HF rotate_half convention
    h = x.shape[-1] // 2
    rx = torch.cat([-x[..., h:], x[..., :h]], -1)
    return x * cos + rx * sin


class MCTP(nn.Module):
    def __init__(self, cfg, d):
        super().__init__()
        self.cfg = cfg
        nh, nkv, hd, f = cfg["num_heads"], cfg["num_kv_heads"], cfg["head_dim"], cfg["intermediate_size"]
        self.e_norm = nn.Parameter(torch.ones(d))
        self.fc_e = nn.Linear(d, d, bias=False)
        self.fc_h = nn.Linear(d, d, bias=False)
        self.step_bias = nn.Parameter(torch.zeros(cfg["num_steps"], d))
        self.attn_norm = nn.Parameter(torch.ones(d))
        self.q = nn.Linear(d, nh * hd, bias=False)
        self.k = nn.Linear(d, nkv * hd, bias=False)
        self.v = nn.Linear(d, nkv * hd, bias=False)
        self.o = nn.Linear(nh * hd, d, bias=False)
        self.ffn_norm = nn.Parameter(torch.ones(d))
        self.gate = nn.Linear(d, f, bias=False)
        self.up = nn.Linear(d, f, bias=False)
        self.down = nn.Linear(f, d, bias=False)
        for m in [self.fc_e, self.q, self.k, self.v, self.gate, self.up]:
            nn.init.normal_(m.weight, std=0.02)
        with torch.no_grad():
            self.fc_h.weight.copy_(torch.eye(d) + 0.02 * torch.randn(d, d))
        nn.init.zeros_(self.o.weight)
        nn.init.zeros_(self.down.weight)

    def pre(self, g, e, step, eps):
        """Everything before attention: x, and q/k/v (unrotated) [B, L, heads, hd]."""
        c = self.cfg
        x = self.fc_e(rmsnorm(e, self.e_norm, eps)) + self.fc_h(g) + self.step_bias[step]
        n1 = rmsnorm(x, self.attn_norm, eps)
        B, L, _ = x.shape
        q = self.q(n1).view(B, L, c["num_heads"], c["head_dim"]).transpose(1, 2)
        k = self.k(n1).view(B, L, c["num_kv_heads"], c["head_dim"]).transpose(1, 2)
        v = self.v(n1).view(B, L, c["num_kv_heads"], c["head_dim"]).transpose(1, 2)
        rep = c["num_heads"] // c["num_kv_heads"]
        return x, q, k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)

    def post(self, x, att, eps):
        B, h, L, hd = att.shape
        x = x + self.o(att.transpose(1, 2).reshape(B, L, h * hd))
        n2 = rmsnorm(x, self.ffn_norm, eps)
        return x + self.down(F.silu(self.gate(n2)) * self.up(n2))

    def chain(self, H, toks, K, final_norm, eps, theta, window):
        """All chains at once. H [B, L, d] backbone hidden (post final norm); toks [B, L + K] the
        stream's tokens (toks[:, t+1] is the token after position t, padded past the end).
        Returns per step i (1..K) the hidden u_i [B, L, d] of the chains starting at every t."""
        c = self.cfg
        B, L, d = H.shape
        dev, dt = H.device, H.dtype
        scale = 1.0 / math.sqrt(c["head_dim"])
        t = torch.arange(L, device=dev)
        s = torch.arange(L, device=dev)
        outs, chainK, chainV = [], [], []
        g, K1, V1 = H, None, None
        for i in range(1, K + 1):
            e = self.embed[toks[:, i:i + L]]
            x, q, k, v = self.pre(g, e, i - 1, eps)
            qpos = t + i - 1
            cq, sq = rope_cos_sin(qpos, c["head_dim"], theta, q.dtype)
            q = rotate(q, cq, sq)
            k = rotate(k, cq, sq)
            if i == 1:
                K1, V1 = k, v
            else:
                chainK.append(k); chainV.append(v)
            sc = (q @ K1.transpose(-1, -2)) * scale                    # [B, h, L(t), L(s)]
            vis = (s[None, :] <= t[:, None]) & (s[None, :] > (qpos - window)[:, None])
            sc = sc.masked_fill(~vis, float("-inf"))
            extra = [(q * kj).sum(-1, keepdim=True) * scale for kj in chainK]
            p = torch.softmax(torch.cat([sc] + extra, -1).float(), -1).to(q.dtype)
            att = p[..., :L] @ V1
            for j, vj in enumerate(chainV):
                att = att + p[..., L + j:L + j + 1] * vj
            u = self.post(x, att, eps)
            outs.append(u)
            g = final_norm(u)
        return outs


# --------------------------------------------------------------------------------------------------

def load_backbone(model_dir, dev):
    from transformers import AutoModelForCausalLM
    m = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(dev).eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m


class Backbone:
    """What training needs of the frozen model: post-norm hidden states, argmax, the norm and head."""
    def __init__(self, m):
        self.m = m
        cfg = m.config
        self.eps = cfg.rms_norm_eps
        rp = getattr(cfg, "rope_parameters", None) or {}
        self.theta = float(rp.get("rope_theta", getattr(cfg, "rope_theta", 10000.0)))
        self.embed = m.get_input_embeddings().weight
        self.norm_w = m.model.norm.weight
        self.head = m.get_output_embeddings().weight

    def final_norm(self, u):
        return rmsnorm(u, self.norm_w.to(u.dtype), self.eps)

    @torch.no_grad()
    def hidden(self, ids):
        return self.m.model(input_ids=ids).last_hidden_state

    @torch.no_grad()
    def generate(self, prompts, n):
        """Greedy, EOS ignored (as bench:speculative)."""
        out = self.m(input_ids=prompts, use_cache=True, logits_to_keep=1)
        pkv, nxt, gen = out.past_key_values, out.logits[:, -1].argmax(-1), []
        for _ in range(n):
            gen.append(nxt)
            if len(gen) == n:
                break
            out = self.m(input_ids=nxt[:, None], past_key_values=pkv, use_cache=True, logits_to_keep=1)
            pkv, nxt = out.past_key_values, out.logits[:, -1].argmax(-1)
        return torch.cat([prompts, torch.stack(gen, 1)], 1)


def make_pool(bb, data, n_seq, prompt, gen, bos, dev, seed, batch=2048):
    rng = np.random.default_rng(seed)
    plen = prompt - (1 if bos is not None else 0)
    starts = rng.integers(0, len(data) - plen - 1, n_seq)
    seqs = []
    for b in range(0, n_seq, batch):
        p = np.stack([data[s:s + plen] for s in starts[b:b + batch]]).astype(np.int64)
        p = torch.from_numpy(p).to(dev)
        if bos is not None:
            p = torch.cat([torch.full((p.shape[0], 1), bos, device=dev, dtype=p.dtype), p], 1)
        seqs.append(bb.generate(p, gen))
    return torch.cat(seqs)


def step_losses(mod, bb, seqs, K, window, use_steps, vocab_ids=None):
    """Per step: (loss, correct mask, valid mask) for sequences [B, L]."""
    B, L = seqs.shape
    with torch.no_grad(), torch.autocast("cuda", enabled=False):       # the backbone in f32, as the engine
        H = bb.hidden(seqs)
        A = (H @ bb.head.T).argmax(-1)                                  # backbone's choice after t
    pad = torch.zeros(B, K + 1, dtype=seqs.dtype, device=seqs.device)
    toks = torch.cat([seqs, pad], 1)
    Apad = torch.cat([A, pad], 1)
    us = mod.chain(H, toks, use_steps, bb.final_norm, bb.eps, bb.theta, window)
    res = []
    t = torch.arange(L, device=seqs.device)
    for i, u in enumerate(us, 1):
        logits = bb.final_norm(u) @ bb.head.T.to(u.dtype)
        tgt = Apad[:, i:i + L]
        valid = (t + i <= L - 1)[None, :].expand(B, L)
        loss = F.cross_entropy(logits[valid].float(), tgt[valid])
        pred = logits.argmax(-1)
        if vocab_ids is not None:
            pred_r = vocab_ids[logits[..., vocab_ids].argmax(-1)]
        else:
            pred_r = pred
        res.append((loss, pred == tgt, pred_r == tgt, valid))
    return res


@torch.no_grad()
def evaluate(mod, bb, seqs, K, window, prompt, vocab_ids, batch=64):
    """Top-1 accuracy per step, on the generated part (chain starts t >= prompt) and the prompt
    part, full vocabulary and draft vocabulary; chain acceptance (steps 1..i all right) and the
    tokens per forward that greedy drafting of K would give (1 + sum of chain acceptances)."""
    acc = {k: np.zeros(K) for k in ["gen", "gen_draftvocab", "prompt", "chain_gen"]}
    cnt = {k: np.zeros(K) for k in ["gen", "prompt"]}
    for b in range(0, len(seqs), batch):
        s = seqs[b:b + batch]
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=s.is_cuda):
            res = step_losses(mod, bb, s, K, window, K, vocab_ids)
        L = s.shape[1]
        gen_rows = (torch.arange(L, device=s.device) >= prompt)[None, :]
        allok = None
        for i, (_, ok, okr, valid) in enumerate(res):
            g = valid & gen_rows
            p = valid & ~gen_rows
            allok = okr if allok is None else (allok & okr)
            acc["gen"][i] += (ok & g).sum().item()
            acc["gen_draftvocab"][i] += (okr & g).sum().item()
            acc["prompt"][i] += (ok & p).sum().item()
            # chains whose every step is valid, so the counts share one denominator
            gK = (torch.arange(L, device=s.device) + K <= L - 1)[None, :] & gen_rows
            acc["chain_gen"][i] += (allok & gK).sum().item()
            cnt["gen"][i] += g.sum().item()
            cnt["prompt"][i] += p.sum().item()
        nK = ((torch.arange(L, device=s.device) + K <= L - 1) & (torch.arange(L, device=s.device) >= prompt)).sum().item() * len(s)
        cnt.setdefault("chain", 0)
        cnt["chain"] += nK
    out = {
        "top1_generated": (acc["gen"] / cnt["gen"]).round(4).tolist(),
        "top1_generated_draft_vocab": (acc["gen_draftvocab"] / cnt["gen"]).round(4).tolist(),
        "top1_prompt_text": (acc["prompt"] / cnt["prompt"]).round(4).tolist(),
        "chain_acceptance": (acc["chain_gen"] / cnt["chain"]).round(4).tolist(),
    }
    out["tokens_per_forward_estimate"] = round(1 + sum(out["chain_acceptance"]), 3)
    return out


def export(mod, cfg, vocab_rank, out_dir):
    from safetensors.torch import save_file
    sd = {
        "e_norm.weight": mod.e_norm, "fc_e.weight": mod.fc_e.weight, "fc_h.weight": mod.fc_h.weight,
        "step_bias": mod.step_bias, "attn_norm.weight": mod.attn_norm,
        "q_proj.weight": mod.q.weight, "k_proj.weight": mod.k.weight, "v_proj.weight": mod.v.weight,
        "o_proj.weight": mod.o.weight, "ffn_norm.weight": mod.ffn_norm,
        "gate_proj.weight": mod.gate.weight, "up_proj.weight": mod.up.weight, "down_proj.weight": mod.down.weight,
    }
    t = {k: v.detach().to("cpu", torch.bfloat16).contiguous() for k, v in sd.items()}
    t["draft_vocab_rank"] = vocab_rank.to("cpu", torch.int32).contiguous()
    save_file(t, os.path.join(out_dir, "mctp.safetensors"), metadata={"format": "pt"})
    json.dump(cfg, open(os.path.join(out_dir, "mctp_config.json"), "w"), indent=1)
    return t


@torch.no_grad()
def reference(mod, bb, cfg, tokens, vocab_ids, out_path):
    """Float64 on the CPU with the exported (bf16-rounded) weights: step-1 logits on the draft
    vocabulary at the last 3 positions of `tokens`, and the chain of K steps from the last one."""
    import copy
    m = copy.deepcopy(mod).to("cpu", torch.float64)
    for p in m.parameters():
        p.data = p.data.to(torch.bfloat16).to(torch.float64)
    class BB64:
        pass
    b = BB64()
    b.m = copy.deepcopy(bb.m).to("cpu", torch.float64)
    b.eps, b.theta = bb.eps, bb.theta
    b.norm_w = b.m.model.norm.weight
    b.head = b.m.get_output_embeddings().weight
    b.final_norm = lambda u: rmsnorm(u, b.norm_w, b.eps)
    m.embed = b.m.get_input_embeddings().weight
    ids = torch.tensor([tokens], dtype=torch.int64)
    H = b.m.model(input_ids=ids).last_hidden_state
    L, K = len(tokens), cfg["num_steps"]
    vid = vocab_ids.cpu()
    # step 1 at every position needs the next token; the last position's is the backbone's argmax
    nxt = int((H[0, -1] @ b.head.T).argmax())
    # chain from the last position: tokens chosen by the module itself (draft-vocab argmax)
    # full[t + 1] is the token after position t: the stream, the backbone's next token, then the chain's
    full = torch.tensor([tokens + [nxt] + [0] * K], dtype=torch.int64)
    chain_tokens = []
    ref = {"tokens": tokens, "next": nxt, "draft_vocab": cfg["draft_vocab"], "steps": []}
    for i in range(1, K + 1):
        us = m.chain(H, full, i, b.final_norm, b.eps, b.theta, cfg["window"])
        lg = (b.final_norm(us[-1]) @ b.head.T)[0][:, vid]                # [L, draft vocab]
        if i == 1:
            ref["step1_last3"] = [{"pos": L - 3 + j, "logits16": lg[L - 3 + j, :16].tolist(),
                                   "argmax": int(vid[lg[L - 3 + j].argmax()])} for j in range(3)]
        a = int(vid[lg[-1].argmax()])
        ref["steps"].append({"argmax": a, "logits16": lg[-1, :16].tolist(), "max_logit": float(lg[-1].max())})
        chain_tokens.append(a)
        full[0, L + i] = a
    ref["chain"] = chain_tokens
    json.dump(ref, open(out_path, "w"))
    return ref


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model"); ap.add_argument("--data"); ap.add_argument("--out")
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4); ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--ffn", type=int, default=96); ap.add_argument("--window", type=int, default=128)
    ap.add_argument("--draft-vocab", type=int, default=2048)
    ap.add_argument("--pool", type=int, default=16384); ap.add_argument("--eval-seqs", type=int, default=256)
    ap.add_argument("--prompt", type=int, default=256); ap.add_argument("--gen", type=int, default=256)
    ap.add_argument("--batch", type=int, default=64); ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--phases", default="0.25,0.45,0.65", help="time fractions where steps 2, 3, 4... join")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--selftest", action="store_true")
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    if a.selftest:
        return selftest(a)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = True
    os.makedirs(a.out, exist_ok=True)
    t_start = time.time()
    bb = Backbone(load_backbone(a.model, dev))
    mcfg = json.load(open(os.path.join(a.model, "config.json")))
    bos = mcfg.get("bos_token_id")
    d = mcfg["hidden_size"]
    train = np.fromfile(os.path.join(a.data, "train.bin"), dtype=np.uint16)
    evald = np.fromfile(os.path.join(a.data, "eval.bin"), dtype=np.uint16)
    log(a.model, "train tokens", len(train), "eval tokens", len(evald), "bos", bos, dev)
    t0 = time.time()
    pool = make_pool(bb, train, a.pool, a.prompt, a.gen, bos, dev, a.seed)
    evs = make_pool(bb, evald, a.eval_seqs, a.prompt, a.gen, bos, dev, a.seed + 1)
    log("pool", tuple(pool.shape), "eval", tuple(evs.shape), f"{time.time() - t0:.1f}s")
    # draft vocabulary: the backbone's most frequent greedy choices on the training pool
    counts = torch.bincount(pool[:, a.prompt:].reshape(-1), minlength=bb.head.shape[0])
    rank = counts.argsort(descending=True)
    cov = {n: round(counts[rank[:n]].sum().item() / counts.sum().item(), 4) for n in [512, 1024, 2048, 3072, 4096]}
    log("draft vocab coverage of greedy tokens", cov)
    vocab_ids = rank[:a.draft_vocab]
    cfg = {"num_steps": a.steps, "hidden_size": d, "num_heads": a.heads, "num_kv_heads": a.kv_heads, "head_dim": 32,
           "intermediate_size": a.ffn, "window": a.window, "draft_vocab": a.draft_vocab,
           "rms_norm_eps": bb.eps, "rope_theta": bb.theta, "hidden_input": "final_norm", "dtype": "bfloat16"}
    mod = MCTP(cfg, d).to(dev)
    mod.embed = bb.embed.detach()  # a plain tensor: not a parameter of the module
    nparam = sum(p.numel() for p in mod.parameters())
    log("module params", nparam)
    opt = torch.optim.AdamW(mod.parameters(), lr=a.lr, betas=(0.9, 0.95), weight_decay=0.0)
    phases = [float(x) for x in a.phases.split(",")]
    it, t_train, hist = 0, time.time(), []
    gen = torch.Generator(device="cpu").manual_seed(a.seed)
    while True:
        frac = (time.time() - t_train) / a.seconds
        if frac >= 1:
            break
        use = 1 + sum(frac >= p for p in phases[: a.steps - 1])
        lr = a.lr * min(1.0, (it + 1) / 100) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))
        for gparam in opt.param_groups:
            gparam["lr"] = lr
        idx = torch.randint(0, len(pool), (a.batch,), generator=gen).to(dev)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev == "cuda"):
            res = step_losses(mod, bb, pool[idx], a.steps, a.window, use)
        loss = sum(r[0] for r in res) / len(res)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(mod.parameters(), 1.0)
        opt.step()
        if it % 200 == 0:
            accs = [round(((r[1] & r[3]).sum() / r[3].sum()).item(), 3) for r in res]
            log(f"it {it} frac {frac:.2f} steps {use} loss {loss.item():.3f} acc {accs} lr {lr:.2e}")
            hist.append({"it": it, "seconds": round(time.time() - t_train, 1), "steps": use, "loss": round(loss.item(), 4), "acc": accs})
        it += 1
    train_s = time.time() - t_train
    mod.eval()
    ev = evaluate(mod, bb, evs, a.steps, a.window, a.prompt, vocab_ids.to(dev))
    log("held-out", json.dumps(ev))
    export(mod, cfg, rank[:4096], a.out)
    ref_tokens = evs[0, a.prompt - 24:a.prompt + 8].tolist()
    if bos is not None:
        ref_tokens = [bos] + ref_tokens[1:]
    reference(mod, bb, cfg, ref_tokens, vocab_ids, os.path.join(a.out, "mctp_ref.json"))
    metrics = {"model": a.model, "config": cfg, "params": nparam, "iterations": it, "batch": a.batch,
               "train_seconds": round(train_s, 1), "total_seconds": round(time.time() - t_start, 1),
               "gpu": torch.cuda.get_device_name() if dev == "cuda" else "cpu",
               "pool_sequences": a.pool, "prompt": a.prompt, "gen": a.gen, "lr": a.lr, "phases": phases,
               "draft_vocab_coverage": cov, "held_out": ev, "history": hist}
    json.dump(metrics, open(os.path.join(a.out, "mctp_metrics.json"), "w"), indent=1)
    log("done", a.out)


def selftest(a):
    """CPU: a random 2-layer Llama backbone, a few iterations, eval, export, reference."""
    from transformers import LlamaConfig, LlamaForCausalLM
    import tempfile
    c = LlamaConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                    head_dim=32, vocab_size=300, tie_word_embeddings=True, max_position_embeddings=128)
    tmp = tempfile.mkdtemp()
    LlamaForCausalLM(c).save_pretrained(tmp)
    os.makedirs(os.path.join(tmp, "data"))
    np.random.default_rng(0).integers(2, 300, 5000).astype(np.uint16).tofile(os.path.join(tmp, "data", "train.bin"))
    np.random.default_rng(1).integers(2, 300, 2000).astype(np.uint16).tofile(os.path.join(tmp, "data", "eval.bin"))
    sys.argv = [sys.argv[0], "--model", tmp, "--data", os.path.join(tmp, "data"), "--out", os.path.join(tmp, "out"),
                "--seconds", "3", "--pool", "16", "--eval-seqs", "4", "--prompt", "32", "--gen", "16", "--batch", "4",
                "--window", "8", "--draft-vocab", "128"]
    main()
    print(open(os.path.join(tmp, "out", "mctp_ref.json")).read()[:300])
    print("selftest OK")


if __name__ == "__main__":
    main()
