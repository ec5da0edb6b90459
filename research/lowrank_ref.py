"""Reference logits of a low-rank (streamlm compress) Llama checkpoint, in numpy float64.

Reads DIR/config.json (with its `streamlm_lowrank` section) and DIR/model.safetensors, rebuilds each
factored linear as y = (x @ A.T) @ B.T from the stored factors (never W = B @ A), and runs the
Llama forward (RMSNorm, default RoPE, GQA causal attention, SwiGLU) over fixed token ids.
Writes DIR/reference.safetensors: input_ids I32[T], logits F32[T, V].

numpy only (no torch), so it runs on the CPU machine: python3 research/lowrank_ref.py DIR
"""
import json, os, sys

import numpy as np
from safetensors.numpy import load_file, save_file

T = 24


def input_ids(vocab):
    return np.array([(i * 37 + 5) % vocab for i in range(T)], dtype=np.int32)


def main(d):
    cfg = json.load(open(os.path.join(d, "config.json")))
    lr = cfg["streamlm_lowrank"]
    assert lr["version"] == 1, lr["version"]
    W = {k: v.astype(np.float64) for k, v in load_file(os.path.join(d, "model.safetensors")).items()}
    H, nH, nKv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or H // nH
    eps = cfg["rms_norm_eps"]
    theta = (cfg.get("rope_parameters") or {}).get("rope_theta", cfg.get("rope_theta", 10000.0))

    def linear(x, p):
        if p in lr["ranks"]:
            y = (x @ W[p + ".lr_a"].T) @ W[p + ".lr_b"].T
        else:
            y = x @ W[p + ".weight"].T
        return y + W[p + ".bias"] if p + ".bias" in W else y

    def rms(x, w):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w

    ids = input_ids(cfg["vocab_size"])
    pos = np.arange(T, dtype=np.float64)
    inv = 1.0 / theta ** (np.arange(0, hd, 2, dtype=np.float64) / hd)
    ang = pos[:, None] * inv[None, :]
    cos, sin = np.cos(ang), np.sin(ang)

    def rope(x):  # (T, heads, hd), rotate_half
        a, b = x[..., : hd // 2], x[..., hd // 2:]
        c, s = cos[:, None, :], sin[:, None, :]
        return np.concatenate([a * c - b * s, b * c + a * s], -1)

    x = W["model.embed_tokens.weight"][ids]
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = rms(x, W[p + "input_layernorm.weight"])
        q = rope(linear(h, p + "self_attn.q_proj").reshape(T, nH, hd))
        k = rope(linear(h, p + "self_attn.k_proj").reshape(T, nKv, hd))
        v = linear(h, p + "self_attn.v_proj").reshape(T, nKv, hd)
        rep = nH // nKv
        k, v = np.repeat(k, rep, 1), np.repeat(v, rep, 1)
        s = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(hd) + mask
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        att = np.einsum("hqk,khd->qhd", s, v).reshape(T, nH * hd)
        x = x + linear(att, p + "self_attn.o_proj")
        h = rms(x, W[p + "post_attention_layernorm.weight"])
        g = linear(h, p + "mlp.gate_proj")
        u = linear(h, p + "mlp.up_proj")
        x = x + linear(g / (1 + np.exp(-g)) * u, p + "mlp.down_proj")
    x = rms(x, W["model.norm.weight"])
    head = W["lm_head.weight"] if "lm_head.weight" in W else W["model.embed_tokens.weight"]
    logits = x @ head.T
    save_file({"input_ids": ids, "logits": logits.astype(np.float32)}, os.path.join(d, "reference.safetensors"))
    print(f"{d}: logits {logits.shape}, |max| {np.abs(logits).max():.4f}")


if __name__ == "__main__":
    for d in sys.argv[1:] or ["test/fixtures/lowrank-llama"]:
        main(d)
