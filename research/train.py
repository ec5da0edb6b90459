"""Train the shipped novels models (issue 4): a Llama-architecture LM, vanilla and with a learnable
sink token, on the public-domain novels of ../shared/corpus, with attention-sink probes.

Steps (see docs/training.md for the recipes and results):

  # here (CPU): tokenizer and the long-eval token ids, shipped with the GPU call in .data/
  python3 research/train_tokenizer.py --corpus ../shared/corpus/train --out .data/tokenizer.json
  python3 research/train.py prep-eval --data .data --longeval ../shared/corpus/longeval
  cp ../shared/corpus/train/*.txt.xz .data/train/

  # GPU machine: tokenize train, train both variants concurrently on one GPU, evaluate, export, pack
  python3 research/train.py all --data .data --out $OUT --seconds 430

  # CPU smoke test of the whole pipeline on a tiny config
  python3 research/train.py all --data .data --out /tmp/smoke --smoke

Cache policies follow src/cache (the engine): per step the token attends to the cache and itself,
is appended, then the policy evicts. `sink:S+W` keeps the first S tokens and the last W; keys are
rotated at their stream index and a query at its cache position, so a sink is seen at distance
min(t, S+W) - i and a window key at its true distance t - j. `recompute:W` re-runs the W tokens
before t from scratch (positions 0..W). This file computes all of them exactly and in parallel:
each token's K/V at every layer is computed once, from the cache it saw, so masked attention over
the whole stream with the right per-(query, key) rotation is the same function as token-by-token.
"""
import argparse, glob, json, lzma, math, os, shutil, subprocess, sys, tarfile, time

import numpy as np

EOS_ID, BOS_ID = 0, 1
SPECIALS = ["<|endoftext|>", "<s>"]
HERE = os.path.dirname(os.path.abspath(__file__))


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


# --------------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------------

def base_tokenizer(data):
    from tokenizers import Tokenizer
    return Tokenizer.from_file(os.path.join(data, "tokenizer.json"))


def cmd_prep_eval(a):
    """Sorted-concatenated longeval text (joined by a blank line, as `streamlm eval-ppl --text` does),
    encoded without special tokens; the first --eval-tokens ids go to .data/eval_ids.npy."""
    tok = base_tokenizer(a.data)
    files = sorted(glob.glob(os.path.join(a.longeval, "*.txt")))
    text = ""
    for f in files:
        t = open(f, encoding="utf-8").read()
        text += ("\n\n" if text else "") + t
    ids = tok.encode(text, add_special_tokens=False).ids
    np.save(os.path.join(a.data, "eval_ids.npy"), np.array(ids[: a.eval_tokens], dtype=np.uint16))
    meta = {"files": [os.path.basename(f) for f in files], "join": "\\n\\n", "chars": len(text),
            "tokens_total": len(ids), "tokens_saved": min(len(ids), a.eval_tokens)}
    json.dump(meta, open(os.path.join(a.data, "eval_meta.json"), "w"), indent=1)
    log("eval ids", meta)


def tokenize_train(data, out_path):
    """All train books, each encoded as its paragraphs, books separated by <|endoftext|>."""
    tok = base_tokenizer(data)
    solid = os.path.join(data, "train.tar.xz")  # one solid archive of the books (smaller to carry)
    if os.path.exists(solid):
        # one sequential pass: random access into an xz stream re-decompresses from the start (cost 150 s once)
        with tarfile.open(solid, "r|xz") as tf:
            texts = {os.path.basename(m.name): tf.extractfile(m).read().decode("utf-8")
                     for m in tf if m.isfile() and m.name.endswith(".txt")}
        files = sorted(texts)
        read = texts.pop
    else:
        files = sorted(glob.glob(os.path.join(data, "train", "*.txt.xz")))
        read = lambda f: lzma.open(f, "rt", encoding="utf-8").read()
    assert files, "no train books under " + data
    chunks = []
    for f in files:
        text = read(f)
        paras = text.split("\n\n")
        paras = [p + "\n\n" for p in paras[:-1]] + [paras[-1]]
        enc = tok.encode_batch_fast(paras, add_special_tokens=False) if hasattr(tok, "encode_batch_fast") \
            else tok.encode_batch(paras, add_special_tokens=False)
        ids = [i for e in enc for i in e.ids]
        chunks.append(np.array(ids, dtype=np.uint16))
        chunks.append(np.array([EOS_ID], dtype=np.uint16))
    arr = np.concatenate(chunks)
    np.save(out_path, arr)
    return arr, len(files)


# --------------------------------------------------------------------------------------------------
# model, functional forward for exact streaming evaluation
# --------------------------------------------------------------------------------------------------

def make_config(a, variant):
    from transformers import LlamaConfig
    return LlamaConfig(
        vocab_size=8192, hidden_size=a.hidden, intermediate_size=a.inter, num_hidden_layers=a.layers,
        num_attention_heads=a.heads, num_key_value_heads=a.heads, head_dim=a.hidden // a.heads,
        max_position_embeddings=a.ctx, rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=True,
        bos_token_id=BOS_ID if variant == "sink" else None, eos_token_id=EOS_ID, pad_token_id=None,
        use_cache=False, attention_bias=False, mlp_bias=False, hidden_act="silu", initializer_range=0.02)


class Fn:
    """fp32 Llama forward over a frozen copy of the weights (optionally rounded to bf16 first)."""

    def __init__(self, model, round_bf16=False):
        import torch
        c = model.config
        self.H, self.hd, self.D, self.eps = c.num_attention_heads, c.head_dim, c.hidden_size, c.rms_norm_eps
        sd = {k: v.detach().float().clone() for k, v in model.state_dict().items()}
        if round_bf16:
            sd = {k: v.to(torch.bfloat16).float() for k, v in sd.items()}
        self.emb = sd["model.embed_tokens.weight"]
        self.head = sd.get("lm_head.weight", self.emb) if not c.tie_word_embeddings else self.emb
        self.norm = sd["model.norm.weight"]
        self.layers = []
        for i in range(c.num_hidden_layers):
            p = f"model.layers.{i}."
            self.layers.append({k: sd[p + n] for k, n in [
                ("ln1", "input_layernorm.weight"), ("ln2", "post_attention_layernorm.weight"),
                ("q", "self_attn.q_proj.weight"), ("k", "self_attn.k_proj.weight"),
                ("v", "self_attn.v_proj.weight"), ("o", "self_attn.o_proj.weight"),
                ("g", "mlp.gate_proj.weight"), ("u", "mlp.up_proj.weight"), ("d", "mlp.down_proj.weight")]})
        theta = c.rope_parameters["rope_theta"] if getattr(c, "rope_parameters", None) else c.rope_theta
        dev = self.emb.device
        self.inv_freq = 1.0 / (theta ** (torch.arange(0, self.hd, 2, dtype=torch.int64, device=dev).float() / self.hd))

    def rms(self, x, w):
        import torch
        return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))

    def rope(self, x, pos):
        import torch
        f = pos.float()[:, None] * self.inv_freq[None, :]
        emb = torch.cat([f, f], -1)
        cos, sin = emb.cos(), emb.sin()
        h = x.shape[-1] // 2
        rot = torch.cat([-x[..., h:], x[..., :h]], -1)
        return x * cos + rot * sin

    def mlp(self, L, x):
        import torch.nn.functional as F
        h = self.rms(x, L["ln2"])
        return (F.silu(h @ L["g"].T) * (h @ L["u"].T)) @ L["d"].T

    def nll_from_hidden(self, x, targets, chunk=4096):
        import torch
        x = self.rms(x, self.norm)
        out = []
        for a in range(0, x.shape[0], chunk):
            lg = x[a:a + chunk] @ self.head.T
            out.append(torch.logsumexp(lg, -1) - lg.gather(-1, targets[a:a + chunk, None])[:, 0])
        return torch.cat(out)

    def stream(self, ids, S, W, chunk=1024):
        """NLL of ids[t+1] given the cache at step t, for sink:S+W (S=0: window:W; W=None: dense)."""
        import torch
        T = ids.shape[0]
        dev = ids.device
        W = T + 1 if W is None else W
        pos = torch.arange(T, device=dev)
        qpos_sink = pos.clamp(max=S + W)
        x = self.emb[ids]
        scale = self.hd ** -0.5
        for L in self.layers:
            h = self.rms(x, L["ln1"])
            q = (h @ L["q"].T).view(T, self.H, self.hd).transpose(0, 1)
            k = (h @ L["k"].T).view(T, self.H, self.hd).transpose(0, 1)
            v = (h @ L["v"].T).view(T, self.H, self.hd).transpose(0, 1)
            qr, kr = self.rope(q, pos), self.rope(k, pos)
            qs = self.rope(q, qpos_sink) if S > 0 else None
            out = torch.empty_like(q)
            for a in range(0, T, chunk):
                b = min(T, a + chunk)
                lo = max(S, a - W)
                nS = min(S, b)
                kidx = torch.cat([torch.arange(0, nS, device=dev), torch.arange(lo, b, device=dev)])
                sc = (qr[:, a:b] @ kr[:, kidx].transpose(1, 2)) * scale
                if nS > 0:
                    sc[:, :, :nS] = (qs[:, a:b] @ kr[:, :nS].transpose(1, 2)) * scale
                t = torch.arange(a, b, device=dev)[:, None]
                j = kidx[None, :]
                vis = (j <= t) & ((j < S) | (j >= t - W))
                sc = sc.masked_fill(~vis, float("-inf"))
                out[:, a:b] = torch.softmax(sc, -1) @ v[:, kidx]
            x = x + out.transpose(0, 1).reshape(T, self.D) @ L["o"].T
            x = x + self.mlp(L, x)
        return self.nll_from_hidden(x[:-1], ids[1:])

    def dense_batch(self, ids, probs=False, last_only=False):
        """Batched dense causal forward, positions 0..L-1. Returns (hidden of all or last, [probs/layer])."""
        import torch
        import torch.nn.functional as F
        B, T = ids.shape
        dev = ids.device
        pos = torch.arange(T, device=dev)
        x = self.emb[ids]
        P = []
        mask = torch.ones(T, T, dtype=torch.bool, device=dev).tril()
        for L in self.layers:
            h = self.rms(x, L["ln1"])
            q = self.rope((h @ L["q"].T).view(B, T, self.H, self.hd).transpose(1, 2), pos)
            k = self.rope((h @ L["k"].T).view(B, T, self.H, self.hd).transpose(1, 2), pos)
            v = (h @ L["v"].T).view(B, T, self.H, self.hd).transpose(1, 2)
            if probs:
                sc = (q @ k.transpose(-1, -2)) * self.hd ** -0.5
                p = torch.softmax(sc.masked_fill(~mask, float("-inf")), -1)
                P.append(p)
                o = p @ v
            else:
                o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + o.transpose(1, 2).reshape(B, T, self.D) @ L["o"].T
            x = x + self.mlp(L, x)
        return (x[:, -1] if last_only else x), P

    def recompute(self, ids, W, batch=256):
        """recompute:W: token t (t >= W) re-runs ids[t-W..t] at positions 0..W; earlier t = dense."""
        import torch
        T = ids.shape[0]
        first = self.stream(ids[: min(T, W + 1)], 0, None)  # predictions t = 0..W-1
        if T <= W + 1:
            return first
        win = ids.unfold(0, W + 1, 1)[: T - 1 - W]  # windows ending at t = W..T-2
        out = [first]
        for a in range(0, win.shape[0], batch):
            w = win[a:a + batch]
            hl, _ = self.dense_batch(w, last_only=True)
            out.append(self.nll_from_hidden(hl, ids[W + 1 + a: W + 1 + a + w.shape[0]]))
        return torch.cat(out)

    def sink_probe(self, windows):
        """Gu et al.: alpha[l,h] = mean over windows and queries i of attention on position 0
        (queries 0..T-1, as in the paper); share[l] = fraction of heads with alpha > 0.3.
        ratio[l] = mean over heads, windows and queries i >= 1 of A[i,0] * (i+1): attention on position 0
        relative to a uniform distribution over the visible tokens."""
        import torch
        _, P = self.dense_batch(windows, probs=True)
        T = windows.shape[1]
        i = torch.arange(T, device=windows.device, dtype=torch.float32)
        share, ratio, alpha = [], [], []
        for p in P:
            a0 = p[..., 0]  # B, H, T
            al = a0.mean(dim=(0, 2))  # H
            alpha.append([round(float(x), 4) for x in al])
            share.append(float((al > 0.3).float().mean()))
            ratio.append(float((a0[..., 1:] * (i[1:] + 1)).mean()))
        return {"share": share, "ratio": ratio, "alpha": alpha, "sink_metric": float(np.mean(share))}


def ppl(nll):
    return float(math.exp(float(nll.double().mean())))


def stream_metrics(fn, stream, policies, after=256):
    """policies: list of names; returns {name: {ppl, ppl_after_window}} over len(stream)-1 predictions."""
    res = {}
    for name in policies:
        if name == "dense":
            nll = fn.stream(stream, 0, None)
        elif name.startswith("window:"):
            nll = fn.stream(stream, 0, int(name.split(":")[1]))
        elif name.startswith("sink:"):
            s, w = name.split(":")[1].split("+")
            nll = fn.stream(stream, int(s), int(w))
        elif name.startswith("recompute:"):
            nll = fn.recompute(stream, int(name.split(":")[1]))
        res[name] = {"ppl": round(ppl(nll), 4), "ppl_after_window": round(ppl(nll[after:]), 4) if nll.shape[0] > after else None}
    return res


# --------------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------------

def cmd_train(a):
    import torch
    import torch.nn.functional as F
    from transformers import LlamaForCausalLM

    t_start = time.time()
    deadline = a.deadline if a.deadline else t_start + a.seconds
    torch.manual_seed(a.seed + (1 if a.variant == "sink" else 0))
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    os.makedirs(a.work, exist_ok=True)

    data = torch.from_numpy(np.load(a.train_ids).astype(np.int32)).to(dev)
    eval_ids = torch.from_numpy(np.load(os.path.join(a.data, "eval_ids.npy")).astype(np.int64)).to(dev)
    N = data.shape[0]
    V = 8192
    cfg = make_config(a, a.variant)
    model = LlamaForCausalLM(cfg)
    prev = None
    if a.init:
        sys.path.insert(0, HERE)
        from train_pack_init import unpack
        sd = {k: torch.from_numpy(v) for k, v in unpack(a.init).items()}
        r = model.load_state_dict(sd, strict=False)
        assert not r.unexpected_keys and set(r.missing_keys) <= {"lm_head.weight"}, r
        prev = json.load(open(a.init[:-4] + ".json"))
        log(f"[{a.variant}] warm start from {a.init} (int8 per-row rounding of {prev['name']} after {prev['tokens_seen']:,} tokens)")
    model = model.to(dev)
    nparams = sum(p.numel() for p in model.parameters())
    log(f"[{a.variant}] params {nparams} ({nparams * 2 / 1e6:.2f} MB bf16) train tokens {N} device {dev}"
        + (f" {torch.cuda.get_device_name()}" if dev == "cuda" else ""))

    def stream_of(n):  # what `streamlm eval-ppl --tokens n` feeds: encode(text)[:n]
        s = eval_ids[: n - 1] if a.variant == "sink" else eval_ids[:n]
        return torch.cat([torch.tensor([BOS_ID], device=dev), s]) if a.variant == "sink" else s

    g = torch.Generator(device="cpu").manual_seed(1234)
    off = torch.randint(0, eval_ids.shape[0] - 64, (a.probe_windows,), generator=g).to(dev)
    probe_win = eval_ids[off[:, None] + torch.arange(64, device=dev)[None]]
    if a.variant == "sink":
        probe_win = torch.cat([torch.full((probe_win.shape[0], 1), BOS_ID, device=dev), probe_win[:, :63]], 1)

    # sanity: functional forward == HF forward (fp32)
    with torch.no_grad():
        fn = Fn(model)
        x = probe_win[:2]
        ref = model(input_ids=x).logits.float()
        h, _ = fn.dense_batch(x)
        mine = fn.rms(h, fn.norm) @ fn.head.T
        err = float((mine - ref).norm() / ref.norm())
        log(f"[{a.variant}] functional vs HF forward rel err {err:.2e}")
        assert err < 1e-4, err

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.wd}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95), eps=1e-8, fused=(dev == "cuda"))

    B, T = a.micro_bs, a.ctx
    ar = torch.arange(T + 1, device=dev)

    def batch():
        if a.variant == "sink":
            i = torch.randint(0, N - T, (B,), device=dev)
            w = data[i[:, None] + ar[None, :T]].long()
            x = torch.cat([torch.full((B, 1), BOS_ID, device=dev, dtype=torch.long), w[:, :-1]], 1)
            return x, w
        i = torch.randint(0, N - T - 1, (B,), device=dev)
        w = data[i[:, None] + ar[None]].long()
        x, y = w[:, :-1].clone(), w[:, 1:]
        if a.random_first:
            x[:, 0] = torch.randint(2, V, (B,), device=dev)
        return x, y

    def loss_fn(x, y):
        with torch.autocast(device_type=dev, dtype=torch.bfloat16, enabled=(dev == "cuda")):
            hdn = model.model(input_ids=x, use_cache=False).last_hidden_state
            logits = model.lm_head(hdn)
        return F.cross_entropy(logits.float().view(-1, V), y.reshape(-1))

    step_fn = loss_fn
    if a.compile and dev == "cuda":
        try:
            step_fn = torch.compile(loss_fn)
            x, y = batch()
            l = step_fn(x, y)
            l.backward()
            opt.zero_grad(set_to_none=True)
            log(f"[{a.variant}] compiled in {time.time() - t_start:.1f}s since start")
        except Exception as e:  # fall back to eager rather than lose the run
            log(f"[{a.variant}] torch.compile failed, eager: {type(e).__name__}: {str(e)[:300]}")
            step_fn = loss_fn
            opt.zero_grad(set_to_none=True)

    history = list(prev["history"]) if prev else []
    tok_per_step = B * T * a.accum
    step0, seen0 = (prev["steps"], prev["tokens_seen"]) if prev else (0, 0)
    step, seen = 0, 0
    t_train = time.time()
    span = max(1.0, deadline - t_train)
    loss_acc = torch.zeros((), device=dev)
    n_acc = 0
    t_log, seen_log = time.time(), 0
    probe_time = 0.0
    last_loss = float("nan")

    def probe(tag):
        nonlocal probe_time
        t0 = time.time()
        with torch.no_grad():
            fn = Fn(model)
            sp = fn.sink_probe(probe_win)
            st = stream_metrics(fn, stream_of(a.probe_tokens), ["window:256", "sink:4+252", "sink:1+255", "recompute:256"])
            d512 = ppl(fn.stream(stream_of(512), 0, None))
        r = {"run": len(prev.get("runs", [1])) + 1 if prev else 1, "step": step0 + step, "tokens_seen": seen0 + seen, "loss": last_loss, "sink_metric": sp["sink_metric"],
             "share": [round(x, 3) for x in sp["share"]], "ratio": [round(x, 2) for x in sp["ratio"]],
             "ppl_after_256": {k: v["ppl_after_window"] for k, v in st.items()}, "dense512": round(d512, 3)}
        probe_time += time.time() - t0
        r["probe_s"] = round(time.time() - t0, 2)
        history.append(r)
        log(f"[{a.variant}] PROBE {tag} " + json.dumps(r))

    model.train()
    while True:
        now = time.time()
        if now >= deadline:
            break
        prog = min(1.0, (now - t_train) / span)
        lr = a.lr * min(1.0, (step + 1) / a.warmup) * (a.min_lr_frac + (1 - a.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * prog)))
        for gp in opt.param_groups:
            gp["lr"] = lr
        for _ in range(a.accum):
            x, y = batch()
            l = step_fn(x, y)
            (l / a.accum).backward()
            loss_acc += l.detach()
            n_acc += 1
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        seen += tok_per_step
        if step % a.log_every == 0 or step == 1:
            last_loss = float(loss_acc / n_acc)
            loss_acc.zero_(); n_acc = 0
            dt = time.time() - t_log
            log(f"[{a.variant}] step {step} loss {last_loss:.4f} lr {lr:.2e} tok/s {(seen - seen_log) / max(dt, 1e-9):,.0f} "
                f"seen {seen / 1e6:.1f}M elapsed {time.time() - t_start:.0f}s")
            t_log, seen_log = time.time(), seen
            if not math.isfinite(last_loss):
                log(f"[{a.variant}] loss is not finite, stopping")
                break
        if step % a.probe_every == 0:
            model.eval()
            try:
                probe(f"step {step}")
            except Exception as e:
                log(f"[{a.variant}] probe failed: {type(e).__name__}: {str(e)[:300]}")
            model.train()
    if n_acc:
        last_loss = float(loss_acc / n_acc)
    train_s = time.time() - t_train
    log(f"[{a.variant}] trained {step} steps, {seen / 1e6:.1f}M tokens in {train_s:.0f}s (probes {probe_time:.0f}s), last loss {last_loss:.4f}")

    # export first, so a late failure still leaves a model
    model.eval()
    outdir = os.path.join(a.work, a.name)
    export(model, a, outdir, a.variant)
    devname = torch.cuda.get_device_name() if dev == "cuda" else "cpu"
    this_run = {"recipe": recipe(a), "steps": step, "tokens_seen": seen, "train_seconds": round(train_s, 1),
                "final_train_loss": round(last_loss, 4), "device": devname,
                "init": (f"warm start: {prev['name']} after {prev['tokens_seen']:,} tokens, weights rounded to int8 per row; fresh AdamW state"
                         if prev else "random (HF Llama init, std 0.02)")}
    runs = (prev.get("runs") or [{k: prev[k] for k in ["recipe", "steps", "tokens_seen", "train_seconds", "final_train_loss", "device"]}
                                 | {"init": "random (HF Llama init, std 0.02)"}]) if prev else []
    runs = runs + [this_run]
    summary = {"variant": a.variant, "name": a.name, "params": nparams, "steps": step0 + step, "tokens_seen": seen0 + seen,
               "unique_train_tokens": int(N), "epochs": round((seen0 + seen) / N, 2),
               "train_seconds": round(sum(r["train_seconds"] for r in runs), 1),
               "final_train_loss": round(last_loss, 4), "recipe": recipe(a), "runs": runs, "history": history,
               "device": devname}
    json.dump(summary, open(os.path.join(outdir, "metrics.json"), "w"), indent=1)
    write_card(outdir, a, summary)

    # final metrics on the exported (bf16-rounded) weights, fp32 compute
    try:
        final_eval(a, model, outdir, summary, probe_win, stream_of, eval_ids, dev)
    except Exception as e:
        import traceback; traceback.print_exc()
        log(f"[{a.variant}] final eval failed: {type(e).__name__}: {str(e)[:300]}")


def final_eval(a, model, outdir, summary, probe_win, stream_of, eval_ids, dev):
    import torch
    t0 = time.time()
    with torch.no_grad():
        fn = Fn(model, round_bf16=True)
        sp = fn.sink_probe(probe_win)
        final = {"sink_probe": sp}
        n = a.final_tokens
        final[f"stream_{n}"] = stream_metrics(fn, stream_of(n), ["window:256", "sink:4+252", "sink:1+255", "recompute:256"])
        if a.long_tokens and eval_ids.shape[0] >= a.long_tokens:
            final[f"stream_{a.long_tokens}"] = stream_metrics(fn, stream_of(a.long_tokens), ["window:256", "sink:4+252", "sink:1+255"])
        final["dense_512"] = round(ppl(fn.stream(stream_of(512), 0, None)), 4)
        final["dense_2048"] = round(ppl(fn.stream(stream_of(2048), 0, None)), 4)
        # reference for engine parity: HF forward, fp32, on the saved bf16 weights
        from transformers import LlamaForCausalLM as M
        ref = M.from_pretrained(outdir, dtype=torch.float32).to(dev).eval()
        ids512 = stream_of(512)
        lg = ref(input_ids=ids512[None]).logits[0].float()
        nll = torch.logsumexp(lg[:-1], -1) - lg[:-1].gather(-1, ids512[1:, None])[:, 0]
        ref_ppl = ppl(nll)
        final["ref_dense_512_hf"] = round(ref_ppl, 6)
        json.dump({"ppl": ref_ppl, "mean_nll": float(nll.double().mean()), "n_predictions": int(nll.shape[0]),
                   "dtype": "float32 compute on the bf16 weights of this directory",
                   "text": "../shared/corpus/longeval/*.txt sorted, joined by a blank line ('\\n\\n'), as `streamlm eval-ppl --text` does",
                   "bos_prepended": a.variant == "sink", "ids": [int(i) for i in ids512.tolist()]},
                  open(os.path.join(outdir, "ref_ppl.json"), "w"))
    final["eval_seconds"] = round(time.time() - t0, 1)
    summary["final"] = final
    json.dump(summary, open(os.path.join(outdir, "metrics.json"), "w"), indent=1)
    write_card(outdir, a, summary)
    log(f"[{a.variant}] FINAL " + json.dumps(final))


def recipe(a):
    return {"hidden": a.hidden, "layers": a.layers, "heads": a.heads, "intermediate": a.inter, "context": a.ctx,
            "vocab": 8192, "lr": a.lr, "min_lr_frac": a.min_lr_frac, "warmup_steps": a.warmup,
            "schedule": "linear warmup, cosine over the wall-clock budget", "weight_decay": a.wd,
            "weight_decay_on": "matrices and the (tied) embedding; not norms", "betas": [0.9, 0.95], "grad_clip": 1.0,
            "batch_tokens": a.micro_bs * a.ctx * a.accum, "micro_batch": a.micro_bs, "accum": a.accum,
            "random_first_token": bool(a.random_first) and a.variant == "vanilla",
            "sink_token": a.variant == "sink", "precision": "bf16 autocast, fp32 master weights", "seed": a.seed}


def export(model, a, outdir, variant):
    import torch
    from tokenizers import Tokenizer, processors
    os.makedirs(outdir, exist_ok=True)
    m = model
    m.config.use_cache = True
    sd_dtype = next(m.parameters()).dtype
    m.to(torch.bfloat16)
    m.save_pretrained(outdir, max_shard_size=a.shard_size)
    m.to(sd_dtype)
    m.config.use_cache = False
    cfgp = os.path.join(outdir, "config.json")
    c = json.load(open(cfgp))
    c["torch_dtype"] = "bfloat16"
    c.setdefault("dtype", "bfloat16")
    c["rope_theta"] = 10000.0  # the 4.x spelling too, beside rope_parameters
    c["architectures"] = ["LlamaForCausalLM"]
    c["tie_word_embeddings"] = True
    json.dump(c, open(cfgp, "w"), indent=2)
    gen = {"eos_token_id": EOS_ID, "do_sample": True, "temperature": 0.8, "top_p": 0.95, "max_new_tokens": 256}
    if variant == "sink":
        gen["bos_token_id"] = BOS_ID
    json.dump(gen, open(os.path.join(outdir, "generation_config.json"), "w"), indent=2)
    tok = Tokenizer.from_file(os.path.join(a.data, "tokenizer.json"))
    if variant == "sink":
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", BOS_ID)])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.save(os.path.join(outdir, "tokenizer.json"))
    tc = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": a.ctx, "clean_up_tokenization_spaces": False,
          "eos_token": SPECIALS[EOS_ID], "add_eos_token": False,
          "bos_token": SPECIALS[BOS_ID] if variant == "sink" else None, "add_bos_token": variant == "sink",
          "added_tokens_decoder": {str(i): {"content": s, "special": True, "lstrip": False, "rstrip": False,
                                            "normalized": False, "single_word": False} for i, s in enumerate(SPECIALS)}}
    json.dump(tc, open(os.path.join(outdir, "tokenizer_config.json"), "w"), indent=2)
    for f in glob.glob(os.path.join(outdir, "*.safetensors")):
        assert os.path.getsize(f) < 16 * 2**20, f
    for f in glob.glob(os.path.join(outdir, "*")):
        os.chmod(f, 0o644)


def manifest_summary(data):
    p = os.path.join(data, "MANIFEST.tsv")
    if not os.path.exists(p):
        return None
    rows = [l.rstrip("\n").split("\t") for l in open(p, encoding="utf-8")]
    hdr, rows = rows[0], rows[1:]
    ix = {h: i for i, h in enumerate(hdr)}
    tr = [r for r in rows if r[ix["split"]] == "train"]
    src, st = {}, {}
    for r in tr:
        s = r[ix["source"]].split("@")[0]
        src[s] = src.get(s, 0) + 1
        st[r[ix["status"]]] = st.get(r[ix["status"]], 0) + 1
    ev = [r for r in rows if r[ix["split"]] == "longeval"]
    years = [int(r[ix["year"]]) for r in tr if r[ix["year"]].isdigit()]
    return {"train_books": len(tr), "train_bytes": sum(int(r[ix["bytes"]]) for r in tr), "sources": src, "status": st,
            "years": [min(years), max(years)] if years else None, "longeval_books": len(ev)}


def write_card(outdir, a, s):
    v = s["variant"]
    r = s["recipe"]
    ms = manifest_summary(a.data)
    f = s.get("final", {})
    lines = [f"# {s['name']}", "",
             f"A {s['params'] / 1e6:.1f}M-parameter Llama-architecture language model (`LlamaForCausalLM`, bf16, tied embeddings), "
             "trained from scratch on public-domain English novels for the streamlm project (issue 4): the model a new user streams first.", ""]
    if v == "sink":
        lines += ["**Sink-token variant.** Every training sample began with one learnable token `<s>` (id 1), which is this model's BOS "
                  "token: `tokenizer.json`'s post-processor and `tokenizer_config.json` (`add_bos_token: true`) prepend it, so HF tools "
                  "and streamlm's engine feed it first, and a `sink:1+W` cache keeps it (StreamingLLM §3.3).", ""]
    else:
        lines += ["**Vanilla variant.** No BOS token is added. During training the first token of every 512-token sample was replaced by a "
                  "uniformly random token and weight decay was 0.5, the two levers (Gu et al., ICLR 2025) that make a first-token "
                  "attention sink appear with little unique data.", ""]
    lines += ["## Architecture", "",
              f"hidden {r['hidden']}, {r['layers']} layers, {r['heads']} heads (head dim {r['hidden'] // r['heads']}), SwiGLU intermediate "
              f"{r['intermediate']}, RoPE θ=10000, RMSNorm, context {r['context']}, byte-level BPE vocabulary 8192 "
              "(`<|endoftext|>` = 0 is EOS and the book separator, `<s>` = 1 the sink/BOS token).", "",
              "## Training data", ""]
    if ms:
        src = ", ".join(f"{k} ({n} books)" for k, n in sorted(ms["sources"].items(), key=lambda kv: -kv[1]))
        sts = "; ".join(f"{k}: {n}" for k, n in ms["status"].items())
        lines += [f"The `train` split of the project's corpus (`../shared/corpus/train`, rows with split `train` in "
                  f"`../shared/corpus/MANIFEST.tsv`): {ms['train_books']} books, {ms['train_bytes'] / 1e6:.0f} MB of text, "
                  f"published {ms['years'][0]}-{ms['years'][1]} (novels, the King James Bible and Shakespeare). Sources: {src}. "
                  f"Licence status per MANIFEST: {sts}. Project Gutenberg headers and licence text were removed; "
                  "hard-wrapped lines are joined. MANIFEST.tsv records each file's source repository and commit, original path, "
                  "title, author, year and sha256.", "",
                  f"Evaluation text: the {ms['longeval_books']} `longeval` books (authors disjoint from train), concatenated in sorted "
                  "order with a blank line between books.", ""]
    lines += [f"Unique training tokens: {s['unique_train_tokens']:,}; tokens seen: {s['tokens_seen']:,} ({s['epochs']} epochs).", "",
              "## Recipe", "", "```json", json.dumps(r, indent=1), "```", ""]
    runs = s.get("runs") or []
    if len(runs) > 1:
        lines += ["Trained in several GPU calls (each one wall-clock-limited), the recipe above being the last one's:", "",
                  "| run | init | lr | warmup | steps | tokens | seconds | final loss |", "|---|---|---|---|---|---|---|---|"]
        for i, rr in enumerate(runs):
            lines.append(f"| {i + 1} | {rr['init']} | {rr['recipe']['lr']} | {rr['recipe']['warmup_steps']} | {rr['steps']} | "
                         f"{rr['tokens_seen'] / 1e6:.0f}M | {rr['train_seconds']:.0f} | {rr['final_train_loss']} |")
        lines.append("")
    lines += [f"Trained {s['steps']} steps in {s['train_seconds']:.0f} s on one {s['device']} (several models sharing the GPU), "
              f"`research/train.py` in the streamlm repository. Final training loss {s['final_train_loss']} (mean over the last steps).", ""]
    if f:
        n = a.final_tokens
        st = f[f"stream_{n}"]
        sp = f["sink_probe"]
        lines += ["## Measured (PyTorch, fp32 compute on these bf16 weights)", "",
                  f"Streaming perplexity on the first {n} tokens of longeval"
                  + (" (`<s>` first)" if v == "sink" else "") + ", cache of 256 tokens, exactly the engine's policies "
                  "(each token attends to the cache and itself, then the cache evicts; sinks at their cache positions):", "",
                  "| cache | ppl (all predictions) | ppl (predictions t >= 256) |", "|---|---|---|"]
        for k, vv in st.items():
            lines.append(f"| `{k}` | {vv['ppl']} | {vv['ppl_after_window']} |")
        if f"stream_{a.long_tokens}" in f:
            lines += ["", f"On {a.long_tokens} tokens: " + ", ".join(f"`{k}` {vv['ppl']}" for k, vv in f[f"stream_{a.long_tokens}"].items()) + "."]
        lines += ["", f"Dense perplexity over the first 512 tokens: {f['dense_512']} (HF forward: {f['ref_dense_512_hf']}, "
                  "recorded with its token ids in `ref_ppl.json` for engine parity); dense over 2048 tokens (beyond the trained "
                  f"context): {f['dense_2048']}.", "",
                  "Attention on position 0 per layer (64 windows of 64 longeval tokens"
                  + (", `<s>` first" if v == "sink" else "") + "): share of heads with mean attention > 0.3 on position 0 "
                  "(Gu et al.'s sink metric) and mean attention on position 0 relative to uniform:", "",
                  "| layer | " + " | ".join(str(i) for i in range(len(sp["share"]))) + " |",
                  "|---|" + "---|" * len(sp["share"]),
                  "| share > 0.3 | " + " | ".join(f"{x:.2f}" for x in sp["share"]) + " |",
                  "| x uniform | " + " | ".join(f"{x:.1f}" for x in sp["ratio"]) + " |", "",
                  f"Sink metric over all heads: {sp['sink_metric']:.3f}.", ""]
        if s["history"]:
            lines += ["Training curve (probe every few hundred steps; ppl on predictions t >= 256 of the first "
                      f"{a.probe_tokens} longeval tokens):", "",
                      "| step | tokens | loss | sink metric | x uniform (last layer) | window:256 | sink:4+252 | sink:1+255 | recompute:256 |",
                      "|---|---|---|---|---|---|---|---|---|"]
            for h in s["history"]:
                p = h["ppl_after_256"]
                lines.append(f"| {h['step']} | {h['tokens_seen'] / 1e6:.0f}M | {h['loss']:.3f} | {h['sink_metric']:.3f} | {h['ratio'][-1]} | "
                             f"{p['window:256']} | {p['sink:4+252']} | {p['sink:1+255']} | {p['recompute:256']} |")
            lines.append("")
    lines += ["## Use", "", "```", f"npx streamlm generate --model models/{s['name']} --prompt 'It was a dark night'",
              f"npx streamlm eval-ppl --model models/{s['name']} --text ../shared/corpus/longeval/*.txt --cache window:256,sink:4+252,sink:1+255,recompute:256 --tokens 20000",
              "```", "", "Licence: the weights are derived only from public-domain texts (see MANIFEST.tsv for the ELTeC TEI markup's CC-BY-4.0 note).", ""]
    open(os.path.join(outdir, "README.md"), "w").write("\n".join(lines))


# --------------------------------------------------------------------------------------------------
# orchestration
# --------------------------------------------------------------------------------------------------

JOB_KEYS = ["hidden", "layers", "heads", "inter", "ctx", "micro_bs", "accum", "warmup", "probe_every", "log_every",
            "probe_tokens", "final_tokens", "long_tokens", "probe_windows", "seed", "lr", "wd", "min_lr_frac",
            "shard_size", "random_first", "compile", "init"]


def train_args(a, job, deadline, train_ids):
    """job: {"variant", "name", "pack"?, and any JOB_KEYS overriding the command line}."""
    args = [sys.executable, "-u", os.path.abspath(__file__), "train", "--variant", job["variant"], "--name", job["name"],
            "--deadline", str(deadline), "--train-ids", train_ids, "--work", a.work, "--data", a.data]
    for k in JOB_KEYS:
        v = job.get(k, getattr(a, k))
        if k == "lr" and "lr" not in job and job["variant"] == "sink" and a.lr_sink:
            v = a.lr_sink
        args += ["--" + k.replace("_", "-"), str(int(v) if isinstance(v, bool) else v)]
    return args


def cmd_all(a):
    t0 = time.time()
    os.makedirs(a.out, exist_ok=True)
    os.makedirs(a.work, exist_ok=True)
    train_ids = os.path.join(a.work, "train_ids.npy")
    arr, nb = tokenize_train(a.data, train_ids)
    log(f"tokenized {nb} books: {arr.shape[0]:,} tokens in {time.time() - t0:.1f}s")
    deadline = t0 + a.seconds
    if a.jobs:
        jobs = json.loads(a.jobs)
    else:
        names = {"vanilla": f"novels-{a.size}", "sink": f"novels-{a.size}-sink"}
        jobs = [{"variant": v, "name": names[v], "pack": True} for v in a.variants.split(",")]
    procs = {}
    for job in jobs:
        v = job["name"]
        lf = open(os.path.join(a.out, f"log-{v}.txt"), "w")
        procs[v] = (subprocess.Popen(train_args(a, job, deadline, train_ids), stdout=lf, stderr=subprocess.STDOUT,
                                     env=dict(os.environ, PYTHONUNBUFFERED="1")), lf)
    hard = t0 + a.hard_seconds
    while any(p.poll() is None for p, _ in procs.values()) and time.time() < hard:
        time.sleep(2)
    for v, (p, lf) in procs.items():
        if p.poll() is None:
            log(f"{v} still running at the hard limit: killing it")
            p.kill()
        lf.close()
        log(f"{v} exit code {p.wait()}")
    for job in jobs:
        v = job["name"]
        d = os.path.join(a.work, v)
        if not os.path.isdir(d):
            continue
        if job.get("pack", True):
            tp = os.path.join(a.out, v + ".tar.gz")
            with tarfile.open(tp, "w:gz", compresslevel=6) as tf:
                tf.add(d, arcname=v)
            log(f"packed {tp} {os.path.getsize(tp) / 2**20:.2f} MiB")
        if os.path.exists(os.path.join(d, "metrics.json")):
            shutil.copy(os.path.join(d, "metrics.json"), os.path.join(a.out, f"metrics-{v}.json"))
        for lf in glob.glob(os.path.join(a.out, f"log-{v}.txt")):
            for line in open(lf):
                if "FINAL" in line:
                    print(line.strip()[:3000])
    log(f"all done in {time.time() - t0:.0f}s")


def main():
    ap = argparse.ArgumentParser()
    sp = ap.add_subparsers(dest="cmd", required=True)
    pe = sp.add_parser("prep-eval")
    pe.add_argument("--data", default=".data")
    pe.add_argument("--longeval", default="../shared/corpus/longeval")
    pe.add_argument("--eval-tokens", type=int, default=300000)

    def common(p):
        p.add_argument("--data", default=".data")
        p.add_argument("--work", default="/tmp/streamlm-train")
        p.add_argument("--hidden", type=int, default=256)
        p.add_argument("--layers", type=int, default=8)
        p.add_argument("--heads", type=int, default=8)
        p.add_argument("--inter", type=int, default=576)
        p.add_argument("--ctx", type=int, default=512)
        p.add_argument("--micro-bs", type=int, default=128)
        p.add_argument("--accum", type=int, default=4)
        p.add_argument("--lr", type=float, default=2e-3)
        p.add_argument("--wd", type=float, default=0.5)
        p.add_argument("--min-lr-frac", type=float, default=0.1)
        p.add_argument("--warmup", type=int, default=200)
        p.add_argument("--probe-every", type=int, default=300)
        p.add_argument("--log-every", type=int, default=50)
        p.add_argument("--probe-tokens", type=int, default=4096)
        p.add_argument("--final-tokens", type=int, default=20000)
        p.add_argument("--long-tokens", type=int, default=100000)
        p.add_argument("--probe-windows", type=int, default=64)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--shard-size", default="10MB")
        p.add_argument("--random-first", type=int, default=1)
        p.add_argument("--compile", type=int, default=1)
        p.add_argument("--init", default="", help="warm start: .npz from research/train_pack_init.py (+ .json beside it)")

    pa = sp.add_parser("all")
    common(pa)
    pa.add_argument("--out", required=True)
    pa.add_argument("--seconds", type=float, default=430, help="wall clock from start to the end of training")
    pa.add_argument("--hard-seconds", type=float, default=575, help="children killed after this")
    pa.add_argument("--variants", default="vanilla,sink")
    pa.add_argument("--size", default="8m")
    pa.add_argument("--lr-sink", type=float, default=None)
    pa.add_argument("--jobs", default="", help='JSON list of {"variant","name","pack",...overrides}; default: vanilla and sink')
    pa.add_argument("--smoke", action="store_true", help="tiny CPU config")
    pt = sp.add_parser("train")
    common(pt)
    pt.add_argument("--variant", choices=["vanilla", "sink"], required=True)
    pt.add_argument("--name", required=True)
    pt.add_argument("--train-ids", required=True)
    pt.add_argument("--deadline", type=float, default=0)
    pt.add_argument("--seconds", type=float, default=60)
    a = ap.parse_args()
    if a.cmd == "prep-eval":
        cmd_prep_eval(a)
    elif a.cmd == "train":
        cmd_train(a)
    else:
        if a.smoke:
            a.hidden, a.layers, a.heads, a.inter, a.ctx, a.micro_bs, a.accum = 64, 2, 2, 128, 128, 8, 1
            a.probe_every, a.log_every, a.probe_tokens, a.final_tokens, a.long_tokens, a.probe_windows = 10, 5, 600, 1200, 3000, 8
            a.warmup, a.seconds, a.hard_seconds, a.compile = 5, 60, 300, 0
        cmd_all(a)


if __name__ == "__main__":
    main()
