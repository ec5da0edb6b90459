"""Pack a trained model directory as a compact warm start for a later GPU call (the working tree
that travels is limited to 64 MiB, with the train books already taking about 39 MiB): 2-D tensors
as int8 with one fp32 scale per row (symmetric, absmax), the rest as fp32, in one compressed .npz.

    python3 research/train_pack_init.py models/novels-8m .data/init-novels-8m.npz
"""
import json, os, shutil, sys
import numpy as np
from safetensors.numpy import load_file


def load_bf16_dir(d):
    import glob
    out = {}
    for f in sorted(glob.glob(os.path.join(d, "*.safetensors"))):
        from safetensors import safe_open
        with safe_open(f, "pt") as fh:
            for k in fh.keys():
                out[k] = fh.get_tensor(k).float().numpy()
    return out


def pack(d, out):
    sd = load_bf16_dir(d)
    arrs = {}
    for k, v in sd.items():
        if v.ndim == 2:
            s = np.abs(v).max(1, keepdims=True) / 127.0
            s[s == 0] = 1.0
            arrs["q8:" + k] = np.clip(np.round(v / s), -127, 127).astype(np.int8)
            arrs["s:" + k] = s.astype(np.float32)
        else:
            arrs["f:" + k] = v.astype(np.float32)
    np.savez_compressed(out, **arrs)
    shutil.copy(os.path.join(d, "metrics.json"), out[:-4] + ".json")
    return out


def unpack(path):
    z = np.load(path)
    sd = {}
    for k in z.files:
        kind, name = k.split(":", 1)
        if kind == "q8":
            sd[name] = z[k].astype(np.float32) * z["s:" + name]
        elif kind == "f":
            sd[name] = z[k]
    return sd


if __name__ == "__main__":
    p = pack(sys.argv[1], sys.argv[2])
    print(p, os.path.getsize(p))
