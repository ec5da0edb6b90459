"""Tiny random-weight checkpoints + HF reference logits (runs on the GPU machine: torch + transformers 5.17).

For every fixture NAME in SPECS writes test/fixtures/NAME/:
  config.json, model.safetensors        transformers' own save_pretrained
  tokenizer.json, tokenizer_config.json the fixture tokenizer (research/tokenizer/, 320 ids, <s>=0 </s>=1)
  reference.safetensors                 input_ids I32[T]; logits_full F32[T,V]; logits_incremental F32[T,V]
All computation is float32 on the CPU (no TF32), attn_implementation="eager" unless the spec says otherwise.
Usage: python3 research/fixtures.py [NAME ...]    (default: all). Exit code 1 if any fixture failed.
"""
import json, os, shutil, sys, traceback

import numpy as np
import torch
import transformers
from safetensors.torch import save_file, load_file
from transformers import (
    FalconConfig, FalconForCausalLM, GPTNeoXConfig, GPTNeoXForCausalLM, LlamaConfig, LlamaForCausalLM,
    MistralConfig, MistralForCausalLM, MptConfig, MptForCausalLM, Qwen2Config, Qwen2ForCausalLM,
    AutoModelForCausalLM,
)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FIX = os.path.join(ROOT, "test", "fixtures")
V = 320
T = 24
PREFILL = 8
SPECIAL = dict(bos_token_id=0, eos_token_id=1)

LLAMA = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=4, max_position_embeddings=128, rms_norm_eps=1e-5, vocab_size=V,
             tie_word_embeddings=False, **SPECIAL)
ROPE = {"rope_type": "default", "rope_theta": 10000.0}


def llama(**kw):
    d = dict(LLAMA, rope_parameters=dict(ROPE))
    d.update(kw)
    return d


FALCON = dict(hidden_size=64, num_attention_heads=4, num_hidden_layers=2, ffn_hidden_size=256,
              max_position_embeddings=128, vocab_size=V, tie_word_embeddings=True,
              rope_parameters=dict(ROPE), layer_norm_epsilon=1e-5, **SPECIAL)

# Fixtures that cover one feature (a RoPE scaling, a window, a dtype, a config quirk) need neither depth
# nor width: one layer, hidden 32 as 2 heads of 16 (head_dim stays 16, so the RoPE bands and the
# attention kernels see what they see at 64), intermediate 32. That keeps the tracked tree under 40 MB
# (docs/design.md). llama, qwen2, gpt_neox, falcon and mpt stay 2 layers × 64: the tests that pin
# greedy outputs, quantization errors and llama.cpp agreement use them.
NARROW = dict(hidden_size=32, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2)

# name: (config class, model class, config kwargs, options)
SPECS = {
    "llama": (LlamaConfig, LlamaForCausalLM, llama(), {"bos": True}),
    "llama-bf16": (LlamaConfig, LlamaForCausalLM, llama(**NARROW), {"bos": True, "save_dtype": torch.bfloat16}),
    "mistral": (MistralConfig, MistralForCausalLM,
                llama(**dict(NARROW, num_key_value_heads=1), tie_word_embeddings=True, sliding_window=None,
                      rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}), {"bos": True}),
    "qwen2": (Qwen2Config, Qwen2ForCausalLM,
              llama(num_key_value_heads=2, tie_word_embeddings=True, rms_norm_eps=1e-6, use_sliding_window=False,
                    rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}), {"bos": False}),
    "gpt_neox": (GPTNeoXConfig, GPTNeoXForCausalLM,
                 dict(hidden_size=64, num_attention_heads=4, num_hidden_layers=2, intermediate_size=256,
                      max_position_embeddings=128, vocab_size=V, hidden_act="gelu", layer_norm_eps=1e-5,
                      use_parallel_residual=True, attention_bias=True, tie_word_embeddings=False,
                      rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.25},
                      **SPECIAL), {"bos": False}),
    "falcon": (FalconConfig, FalconForCausalLM,
               dict(FALCON, new_decoder_architecture=False, multi_query=True, parallel_attn=True, bias=False,
                    alibi=False), {"bos": False}),
    "falcon-new": (FalconConfig, FalconForCausalLM,
                   # kept at 2 layers x 64: narrowed, its five cache policies came within 0.5% of each other
                   # in streaming perplexity, too close for the stream test to tell them apart
                   dict(FALCON, new_decoder_architecture=True, multi_query=True, num_kv_heads=2, parallel_attn=True,
                        bias=True, alibi=False), {"bos": False}),
    # Falcon-RW-1B layout. Eager Falcon+ALiBi in transformers 5.17 adds the ALiBi bias twice (once in the
    # attention, once through the mask); SDPA adds it once, as the original Falcon code does: use SDPA.
    "falcon-alibi": (FalconConfig, FalconForCausalLM,
                     dict(FALCON, hidden_size=32, num_attention_heads=2, num_hidden_layers=1, ffn_hidden_size=64,
                          new_decoder_architecture=False, multi_query=False, parallel_attn=False, bias=True,
                          alibi=True), {"bos": False, "attn": "sdpa", "also_eager": True}),
    "mpt": (MptConfig, MptForCausalLM,
            dict(d_model=64, n_heads=4, n_layers=2, expansion_ratio=4, max_seq_len=128, vocab_size=V,
                 no_bias=True, tie_word_embeddings=True, use_cache=True, layer_norm_epsilon=1e-5,
                 attn_config={"alibi": True, "alibi_bias_max": 8, "clip_qkv": 1.5}, **SPECIAL), {"bos": False}),
    "llama-rope-linear": (LlamaConfig, LlamaForCausalLM,
                          llama(**NARROW, tie_word_embeddings=True,
                                rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}),
                          {"bos": True}),
    "llama-rope-dynamic": (LlamaConfig, LlamaForCausalLM,
                           llama(**NARROW, tie_word_embeddings=True, max_position_embeddings=16,
                                 rope_parameters={"rope_type": "dynamic", "factor": 2.0, "rope_theta": 10000.0}),
                           {"bos": True}),
    "llama-rope-llama3": (LlamaConfig, LlamaForCausalLM,
                          llama(**NARROW, tie_word_embeddings=True,
                                rope_parameters={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                 "high_freq_factor": 4.0, "original_max_position_embeddings": 64,
                                                 "rope_theta": 10000.0}), {"bos": True}),
    "llama-rope-yarn": (LlamaConfig, LlamaForCausalLM,
                        llama(**NARROW, tie_word_embeddings=True, rope_parameters={"rope_type": "yarn", "factor": 4.0,
                                               "original_max_position_embeddings": 32, "rope_theta": 10000.0}),
                        {"bos": True}),
    # Appended last so the seeds of the fixtures above stay the same (seed = 1000 + index).
    # Mistral with a sliding window shorter than the 24-token reference: tokens past position 8
    # no longer see the first ones.
    "mistral-sliding": (MistralConfig, MistralForCausalLM,
                        llama(**dict(NARROW, num_key_value_heads=1), tie_word_embeddings=True, sliding_window=8,
                              rope_parameters={"rope_type": "default", "rope_theta": 10000.0}), {"bos": True}),
    # MPT whose config says expansion_ratio=2: HF's MptForCausalLM still builds 4 * d_model (= 128 here).
    "mpt-expansion": (MptConfig, MptForCausalLM,
                      dict(d_model=32, n_heads=2, n_layers=1, expansion_ratio=2, max_seq_len=128, vocab_size=V,
                           no_bias=True, tie_word_embeddings=True, use_cache=True, layer_norm_epsilon=1e-5,
                           attn_config={"alibi": True, "alibi_bias_max": 8}, **SPECIAL), {"bos": False}),
}


def init_weights(model, seed):
    """Fixed-seed init, larger than HF's 0.02 so that logits and attention are far from uniform."""
    g = torch.Generator().manual_seed(seed)
    emb_names = ("embed", "wte", "word_embeddings", "lm_head")
    with torch.no_grad():
        for name, p in model.named_parameters():  # tied weights appear once
            if p.dim() >= 2:
                std = 0.3 if any(e in name for e in emb_names) else 0.15
                p.copy_(torch.randn(p.shape, generator=g) * std)
            elif name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            else:  # norm weights
                p.copy_(1.0 + torch.randn(p.shape, generator=g) * 0.1)


def input_ids():
    return torch.from_numpy(np.random.RandomState(1234).randint(0, V, size=T).astype(np.int64))


@torch.no_grad()
def reference(model, ids):
    full = model(ids[None], use_cache=False).logits[0].float()
    out = model(ids[None, :PREFILL], use_cache=True)
    pkv, parts = out.past_key_values, [out.logits[0]]
    for t in range(PREFILL, T):
        out = model(ids[None, t:t + 1], past_key_values=pkv, use_cache=True)
        pkv = out.past_key_values
        parts.append(out.logits[0])
    inc = torch.cat(parts, 0).float()
    return full, inc


def write_tokenizer(d, bos, max_len):
    src = "tokenizer-bos.json" if bos else "tokenizer.json"
    with open(os.path.join(HERE, "tokenizer", src), encoding="utf-8") as fh:
        tok = json.load(fh)
    # compact JSON, the same tokenizer: half the bytes of the indented file, in every fixture directory
    with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as fh:
        json.dump(tok, fh, ensure_ascii=False, separators=(",", ":"))
    cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
           "add_bos_token": bool(bos), "add_eos_token": False, "model_max_length": max_len,
           "clean_up_tokenization_spaces": False}
    with open(os.path.join(d, "tokenizer_config.json"), "w") as fh:
        json.dump(cfg, fh, indent=2)


def rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def build(name, seed):
    Cfg, Model, kw, opt = SPECS[name]
    attn = opt.get("attn", "eager")
    d = os.path.join(FIX, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    torch.manual_seed(seed)
    cfg = Cfg(**kw)
    cfg._attn_implementation = attn
    model = Model(cfg).float().eval()
    init_weights(model, seed)
    if opt.get("save_dtype") is not None:
        model = model.to(opt["save_dtype"])
    model.save_pretrained(d)
    max_len = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "max_seq_len", 128)
    write_tokenizer(d, opt["bos"], max_len)

    # reload exactly as a user would, upcast to f32, and compute the references
    m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation=attn).eval()
    assert all(p.dtype == torch.float32 for p in m.parameters())
    ids = input_ids()
    full, inc = reference(m, ids)
    assert full.shape == (T, V) and torch.isfinite(full).all() and torch.isfinite(inc).all()
    save_file({"input_ids": ids.to(torch.int32).contiguous(), "logits_full": full.contiguous(),
               "logits_incremental": inc.contiguous()}, os.path.join(d, "reference.safetensors"))

    # self-checks
    sd = load_file(os.path.join(d, "model.safetensors"))
    dtypes = sorted({str(v.dtype) for v in sd.values()})
    msg = []
    with torch.no_grad():
        m64 = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float64, attn_implementation=attn).eval()
        full64 = m64(ids[None], use_cache=False).logits[0]
    msg.append("f32-vs-f64 %.1e" % rel(full.double(), full64))
    msg.append("full-vs-incr %.1e" % rel(inc, full))
    p = torch.softmax(full, -1)
    msg.append("logit std %.2f, max p %.2f" % (full.std().item(), p.max(-1).values.mean().item()))
    if opt.get("also_eager"):
        me = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()
        with torch.no_grad():
            fe = me(ids[None], use_cache=False).logits[0]
        msg.append("eager-vs-%s %.1e" % (attn, rel(fe, full)))
    if name == "mpt":
        with torch.no_grad():
            x = m.transformer.blocks[0].norm_1(m.transformer.wte(ids[None]))
            qkv = m.transformer.blocks[0].attn.Wqkv(x)
        msg.append("clip_qkv active on %.0f%% of layer-0 qkv" % (100 * (qkv.abs() > 1.5).float().mean()))
    if name == "mistral-sliding":
        # the parity test checks that the same weights without the window miss the reference by > 1e-2
        mw = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation=attn,
                                                  sliding_window=None).eval()
        with torch.no_grad():
            e = rel(mw(ids[None], use_cache=False).logits[0], full)
        msg.append("without the window %.1e" % e)
        assert e > 2e-2, "the window barely changes the logits"
    if name == "mpt-expansion":
        up = sd["transformer.blocks.0.ffn.up_proj.weight"].shape
        msg.append("ffn up_proj %s" % (tuple(up),))
        assert up[0] == 4 * cfg.d_model and cfg.expansion_ratio == 2, "transformers no longer builds 4 * d_model"
    if name == "llama-rope-dynamic":
        msg.append("incr==full before pos 16: %.1e" % rel(inc[:16], full[:16]))
    size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
    cfgj = json.load(open(os.path.join(d, "config.json")))
    print(f"OK {name:20s} {size/1024:7.1f} KiB weights {dtypes} tied={cfgj.get('tie_word_embeddings')} "
          f"params={sum(v.numel() for v in sd.values())} | " + "; ".join(msg), flush=True)
    assert size < 2 * 1024 * 1024
    if not opt.get("save_dtype") and name != "llama-rope-dynamic":
        assert rel(inc, full) < 1e-4, "incremental != full"


def main():
    torch.set_num_threads(4)
    print("torch", torch.__version__, "transformers", transformers.__version__, flush=True)
    names = sys.argv[1:] or list(SPECS)
    failed = []
    for i, name in enumerate(SPECS):
        if name not in names:
            continue
        try:
            build(name, seed=1000 + i)
        except Exception:
            traceback.print_exc()
            print(f"FAIL {name}", flush=True)
            failed.append(name)
    with open(os.path.join(FIX, "versions.json"), "w") as fh:
        json.dump({"torch": torch.__version__, "transformers": transformers.__version__, "T": T,
                   "prefill": PREFILL, "vocab": V}, fh, indent=2)
    print("fixtures failed:", failed or "none", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
