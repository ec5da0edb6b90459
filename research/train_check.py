"""Check research/train.py's parallel streaming evaluation against a literal token-by-token
StreamingLLM loop (pre-rotation keys cached; every step re-rotates keys and the query at their
cache positions, as the paper's reference code does). CPU, a few seconds:

    python3 research/train_check.py MODEL_DIR
"""
import sys, torch
sys.path.insert(0, __import__("os").path.dirname(__file__))
from train import Fn
from transformers import LlamaForCausalLM


def token_by_token(fn, ids, S, W, recompute=False):
    """sink:S+W (S=0: window:W). Per step: attend to cache + self, append, evict to S+W."""
    nll = []
    cache = [([], []) for _ in fn.layers]  # per layer: list of (k_pre_rope [H,hd]), v
    hist = []
    for t in range(len(ids) - 1):
        if recompute:
            win = hist[-W:] + [int(ids[t])]
            h, _ = fn.dense_batch(torch.tensor([win]), last_only=True)
            nll.append(fn.nll_from_hidden(h, ids[t + 1:t + 2])[0])
            hist.append(int(ids[t]))
            continue
        x = fn.emb[ids[t]][None]
        for li, L in enumerate(fn.layers):
            h = fn.rms(x, L["ln1"])
            q = (h @ L["q"].T).view(fn.H, 1, fn.hd)
            k = (h @ L["k"].T).view(fn.H, 1, fn.hd)
            v = (h @ L["v"].T).view(fn.H, 1, fn.hd)
            ks, vs = cache[li]
            K = torch.cat(ks + [k], 1)
            Vv = torch.cat(vs + [v], 1)
            n = K.shape[1]
            pos = torch.arange(n)
            Kr = fn.rope(K, pos)
            qr = fn.rope(q, pos[-1:])
            p = torch.softmax((qr @ Kr.transpose(1, 2)) * fn.hd ** -0.5, -1)
            o = (p @ Vv).transpose(0, 1).reshape(1, fn.D)
            ks.append(k); vs.append(v)
            if W is not None and len(ks) > S + W:
                del ks[S]; del vs[S]
            x = x + o @ L["o"].T
            x = x + fn.mlp(L, x)
        nll.append(fn.nll_from_hidden(x, ids[t + 1:t + 2])[0])
    return torch.stack(nll)


if __name__ == "__main__":
    torch.manual_seed(0)
    m = LlamaForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32).eval()
    fn = Fn(m)
    ids = torch.randint(2, 8192, (60,))
    worst = 0.0
    with torch.no_grad():
        for S, W in [(0, None), (0, 6), (2, 5), (1, 7), (4, 10), (3, 1)]:
            a = fn.stream(ids, S, W, chunk=16)
            b = token_by_token(fn, ids, S, W)
            e = float((a - b).abs().max()); worst = max(worst, e)
            print(f"sink:{S}+{W}  max |dNLL| {e:.2e}")
        a = fn.recompute(ids, 8, batch=7)
        b = token_by_token(fn, ids, 0, 8, recompute=True)
        e = float((a - b).abs().max()); worst = max(worst, e)
        print(f"recompute:8  max |dNLL| {e:.2e}")
    assert worst < 1e-4, worst
    print("ok")
